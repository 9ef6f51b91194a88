#!/usr/bin/env bash
# The report a pull request gets: unsafe statements in the SQL migrations
# (`detect`), every plan checked against the database (`lint`), and the SQL and
# locks of each plan's phases (`show`), as Markdown. Used by action.yml; runs
# the same in any shell CI.
#
#   DATABASE_URL        a PostgreSQL with the application's schema (required for lint and show)
#   PGSHIFT_MIGRATIONS  SQL migration files or folders to check, space-separated (optional)
#   PGSHIFT_PLANS       folder of plan files (default: plans)
#   PGSHIFT_REPORT      where to write the Markdown (default: pgshift-report.md)
#   PGSHIFT_BIN         the migrate command (default: npx --no-install migrate)
#
# Exit code: the worst of the three (2 invalid plan, 1 unsafe statement found, 0 all clear).
set -uo pipefail
plans=${PGSHIFT_PLANS:-plans}
report=${PGSHIFT_REPORT:-pgshift-report.md}
read -r -a bin <<< "${PGSHIFT_BIN:-npx --no-install migrate}"
worst=0
note() { [ "$1" -gt "$worst" ] && worst=$1; return 0; }
section() { printf '### %s\n\n```\n%s\n```\n\n' "$1" "$2" >> "$report"; }

printf '## pgshift\n\n' > "$report"
if [ -n "${PGSHIFT_MIGRATIONS:-}" ]; then
  read -r -a migrations <<< "$PGSHIFT_MIGRATIONS"
  out=$("${bin[@]}" plan detect "${migrations[@]}" --no-json 2>&1); rc=$?; note "$rc"
  section "Unsafe statements in the migrations (\`migrate plan detect\`, exit $rc)" "$out"
fi
if [ -d "$plans" ] && compgen -G "$plans/*.yaml" > /dev/null; then
  out=$("${bin[@]}" plan lint --dir "$plans" --no-json 2>&1); rc=$?; note "$rc"
  section "Plans checked against the database (\`migrate plan lint\`, exit $rc)" "$out"
  if [ "$rc" -eq 0 ]; then
    for file in "$plans"/*.yaml; do
      name=$(basename "$file" .yaml)
      out=$("${bin[@]}" plan show "$name" --dir "$plans" --no-json 2>&1); rc=$?; note "$rc"
      section "\`$name\`: what each phase runs and locks (\`migrate plan show\`)" "$out"
    done
  fi
fi
printf 'exit %s\n' "$worst" >> "$report"
exit "$worst"
