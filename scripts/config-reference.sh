#!/usr/bin/env bash
# Rewrites README.md's configuration reference with what `gatehouse config --defaults`
# prints (the test `the_readme_configuration_reference_is_the_generated_one` fails
# until it is run after a setting is added or changed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bin gatehouse
target/debug/gatehouse config --defaults >target/config-reference.toml
python3 - <<'PY'
import re
readme = open("README.md").read()
begin = "<!-- BEGIN configuration reference: `gatehouse config --defaults`; scripts/config-reference.sh rewrites it -->\n"
end = "<!-- END configuration reference -->"
reference = open("target/config-reference.toml").read()
start = readme.index(begin) + len(begin)
stop = readme.index(end, start)
open("README.md", "w").write(readme[:start] + "```toml\n" + reference + "```\n" + readme[stop:])
PY
echo "README.md: configuration reference rewritten"
