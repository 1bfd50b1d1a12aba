# Sourced by scripts/proof_deploy.sh (and tests/unit/deploy/test_proof_tools.py): the
# summary table every step reports into, and the Go tools built once from the module proxy.
# Expects $bin (where tools are cached).

declare -a rows=()
failures=0
row() {  # row STEP RESULT DETAIL
  rows+=("$(printf '%-3s %-6s %s' "$1" "$2" "$3")")
  [ "$2" = FAIL ] && failures=$((failures + 1))
  printf '\n== step %s: %s  %s\n' "$1" "$2" "$3"
}
say() { printf '   %s\n' "$*"; }

go_tool() {  # go_tool NAME VERSION PACKAGE [BUILD FLAGS...]: build once into .cache/deploy-proof/bin
  local name=$1 version=$2 pkg=$3 target="$bin/$1-$2"
  shift 3
  if [ ! -x "$target" ]; then
    # to stderr: the caller captures stdout as the tool's path
    say "building $name $version from the Go module proxy (once) ..." >&2
    local tmp; tmp=$(mktemp -d "$bin/.build.XXXXXX")
    GOBIN="$tmp" nice -n 10 go install "$@" "$pkg@$version" >&2 || { rm -rf "$tmp"; return 1; }
    mv "$tmp/$name" "$target" || { rm -rf "$tmp"; return 1; }
    rm -rf "$tmp"
  fi
  echo "$target"
}

