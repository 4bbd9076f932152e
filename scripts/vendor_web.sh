#!/usr/bin/env bash
# Refresh the web map libraries vendored into basemap/viewer/static/vendor/ (no CDN at run time).
# Needs npm (the npm registry). Usage: bash scripts/vendor_web.sh [LEAFLET_VERSION] [PMTILES_VERSION]
# Commit the result; the viewer (basemap serve) loads only these files.
set -euo pipefail
LEAFLET_VERSION="${1:-1.9.4}"
PMTILES_VERSION="${2:-4.5.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/basemap/viewer/static/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

cd "$TMP"
npm pack --silent "leaflet@$LEAFLET_VERSION" "pmtiles@$PMTILES_VERSION" >/dev/null
mkdir leaflet pmtiles
tar xzf "leaflet-$LEAFLET_VERSION.tgz" -C leaflet --strip-components=1
tar xzf "pmtiles-$PMTILES_VERSION.tgz" -C pmtiles --strip-components=1

rm -rf "$DEST/leaflet" "$DEST/pmtiles"
mkdir -p "$DEST/leaflet/images" "$DEST/pmtiles"
cp leaflet/dist/leaflet.js leaflet/dist/leaflet.css leaflet/LICENSE "$DEST/leaflet/"
cp leaflet/dist/images/*.png "$DEST/leaflet/images/"
cp pmtiles/dist/pmtiles.js "$DEST/pmtiles/"
# The pmtiles npm package ships no LICENSE file: keep the upstream repository's BSD-3-Clause text.
cat > "$DEST/pmtiles/LICENSE" <<'LICENSE'
pmtiles (npm package, https://github.com/protomaps/PMTiles/tree/main/js), BSD-3-Clause:

Copyright 2021 Protomaps LLC

Redistribution and use in source and binary forms, with or without modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors may be used to endorse or promote products derived from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
LICENSE
printf 'leaflet %s\npmtiles %s\n' "$LEAFLET_VERSION" "$PMTILES_VERSION" > "$DEST/VERSIONS"
echo "vendored leaflet $LEAFLET_VERSION and pmtiles $PMTILES_VERSION into $DEST"
