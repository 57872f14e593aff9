#!/bin/sh
# install.sh LOCK: an image's packages, exactly as deploy/lock/LOCK.txt pins them (every file
# checked against its hashes), then the project's wheel without dependencies, then `pip check`.
set -eu
here=$(dirname "$0")
sh "$here/pip.sh" install --require-hashes --no-deps -r "$here/lock/$1.txt"
sh "$here/pip.sh" install --no-deps /dist/polyfit-*.whl
python -m pip check
