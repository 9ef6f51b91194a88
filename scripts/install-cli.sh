#!/usr/bin/env bash
# Install the migrate CLI from a pgshift source tree (action.yml runs it on
# the action's checkout) with its runtime dependencies only: not the
# development tree's test servers, linters and type definitions.
#
#   install-cli.sh DEST [SOURCE]    SOURCE defaults to this script's tree
#
# 1. dist/ is compiled by TypeScript alone, at the version package-lock.json
#    pins, installed in a scratch folder (types are checked by the project's
#    own CI, not again on every pull request of every user: --noCheck);
# 2. `npm pack` makes the tarball of what the package publishes (`files`);
# 3. it is unpacked in DEST and `npm ci --omit=dev` installs the dependencies
#    package-lock.json pins (no install scripts: none of them has one).
# Then `node DEST/bin/migrate.js` is the CLI. Prints the scratch folder it
# removes; exits non-zero on the first failure.
set -euo pipefail
dest=${1:?usage: install-cli.sh DEST [SOURCE]}
src=$(cd "${2:-$(dirname "$0")/..}" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
quiet=(--no-audit --no-fund --loglevel=error)

locked() { node -e "process.stdout.write(require(process.argv[1]).packages['node_modules/' + process.argv[2]].version)" "$src/package-lock.json" "$1"; }
npm install --prefix "$scratch/tools" --no-save "${quiet[@]}" "typescript@$(locked typescript)" "@types/node@$(locked @types/node)" > /dev/null
node "$scratch/tools/node_modules/typescript/bin/tsc" -p "$src/tsconfig.build.json" --noCheck --typeRoots "$scratch/tools/node_modules/@types"
tarball=$(cd "$src" && npm pack --ignore-scripts --pack-destination "$scratch" "${quiet[@]}" | tail -n 1)

mkdir -p "$dest"
tar -xzf "$scratch/$tarball" -C "$dest" --strip-components=1
cp "$src/package-lock.json" "$dest/"
(cd "$dest" && npm ci --omit=dev --ignore-scripts "${quiet[@]}" > /dev/null)
