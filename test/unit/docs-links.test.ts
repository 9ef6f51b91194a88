import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The manual's links resolve: every relative link in README.md,
 * CONTRIBUTING.md and docs/ names a file of the repository, and every
 * `#anchor` a heading of that file (GitHub's slugs). The README stays a
 * front door, under 15 KB.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function markdownFiles(): Promise<string[]> {
  const docs = await readdir(path.join(ROOT, 'docs'), { recursive: true });
  return ['README.md', 'CONTRIBUTING.md', ...docs.filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];
}

/** GitHub's heading anchor: lowercased, punctuation dropped, spaces to dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

async function anchorsOf(file: string): Promise<Set<string>> {
  const text = await readFile(file, 'utf8');
  const outsideCode = text.replace(/```[\s\S]*?```/g, '');
  return new Set([...outsideCode.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1]!)));
}

function linksOf(text: string): string[] {
  const outsideCode = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...outsideCode.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
}

describe('the manual', () => {
  it('README.md is under 15 KB', async () => {
    expect((await stat(path.join(ROOT, 'README.md'))).size).toBeLessThan(15 * 1024);
  });

  it('has no link that does not resolve', async () => {
    const broken: string[] = [];
    for (const file of await markdownFiles()) {
      const text = await readFile(path.join(ROOT, file), 'utf8');
      for (const link of linksOf(text)) {
        const [target, anchor] = link.split('#') as [string, string | undefined];
        const resolved = target ? path.join(ROOT, path.dirname(file), target) : path.join(ROOT, file);
        const exists = await stat(resolved).then(
          () => true,
          () => false,
        );
        if (!exists) broken.push(`${file}: ${link} (no such file)`);
        else if (anchor && resolved.endsWith('.md') && !(await anchorsOf(resolved)).has(anchor)) broken.push(`${file}: ${link} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});
