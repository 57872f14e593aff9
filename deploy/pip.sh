#!/bin/sh
# pip with the build's package indexes and, when the build was handed one, its CA bundle.
# Bind-mounted into the build by deploy/Dockerfile, never copied into an image:
#   PIP_INDEX_URL        the package index (default PyPI), e.g. a company mirror
#   PIP_EXTRA_INDEX_URL  more indexes, space-separated
#   TORCH_INDEX_URL      torch's own index, searched beside PIP_INDEX_URL (torch's
#                        dependencies come from the package index)
#   /run/secrets/ca      the BuildKit secret `ca`: a CA bundle every pip here trusts
# Every lock entry carries its hashes: whichever index serves a file, pip checks it.
set -eu
export PIP_INDEX_URL="${PIP_INDEX_URL:-https://pypi.org/simple}"
extra="${PIP_EXTRA_INDEX_URL:-} ${TORCH_INDEX_URL:-}"
if [ -n "${extra# }" ]; then export PIP_EXTRA_INDEX_URL="$extra"; else unset PIP_EXTRA_INDEX_URL; fi
if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi
exec python -m pip "$@"
