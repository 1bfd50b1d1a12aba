#!/usr/bin/env bash
# Fetch HAPI FHIR 8.8.0 and its dependencies from Maven Central (once) into
# .cache/fhir-validator/lib, and compile the runner into .cache/fhir-validator/classes.
# Offline after the first run. Prints the directory holding lib/ and classes/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${FHIR_VALIDATOR_HOME:-$root/.cache/fhir-validator}"
if [ ! -f "$out/lib/.complete" ]; then
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$out/lib" -DincludeScope=runtime >&2
  touch "$out/lib/.complete"
fi
src="$here/src/main/java/paincare/ValidatorRunner.java"
cls="$out/classes/paincare/ValidatorRunner.class"
if [ ! -f "$cls" ] || [ "$src" -nt "$cls" ]; then
  mkdir -p "$out/classes"
  javac --release 17 -cp "$out/lib/*" -d "$out/classes" "$src" >&2
fi
echo "$out"
