#!/usr/bin/env bash
# Fetches the text corpus the language-model training guest is tested and demonstrated on
# (sandbox/guests/train_lm, docs/training.md "A second model"): Jane Austen's six novels, from
# Debian's package r-cran-janeaustenr 1.0.0-1 (architecture all; the texts are in the public
# domain, the package is MIT). `apt-get download` fetches the .deb without installing it (nor
# R), its sha256 is checked, `dpkg-deb -x` unpacks it, and the six R-serialized character
# vectors of data/Rdata.rdb (zlib streams, XDR format) are read by a few lines of standard-library
# Python: each novel's lines joined by "\n", each novel ending in "\n", in the file's order
# (Emma, Mansfield Park, Northanger Abbey, Persuasion, Pride and Prejudice, Sense and
# Sensibility). The text (4,025,029 bytes of UTF-8) is checked against its sha256 and kept as
# austen.txt beside the language model, outside git. Nothing is downloaded at test or run time.
# Prints the file's path. Idempotent: a cached, checked file is reused without the network.
#
#   SIETCH_MODEL_DIR   where it is kept (default ~/.cache/sietch/models), as scripts/model.sh
set -euo pipefail

dir="${SIETCH_MODEL_DIR:-$HOME/.cache/sietch/models}"
name="austen.txt"
pkg="r-cran-janeaustenr"
version="1.0.0-1"
deb="${pkg}_${version}_all.deb"
deb_sha="df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
text_sha="65b434d16a8755142bfa95ba19c5f9abd0d30cf3dffe3b6793e834f9f56dcc96"
log() { printf '\033[1mcorpus:\033[0m %s\n' "$*" >&2; }

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$dir"
if ! check "$dir/$name" "$text_sha"; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"  # apt's _apt user writes the download there when it can
  log "fetching $name (4 MB of text, in a 1.6 MB .deb) from Debian: $pkg=$version"
  if ! (cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null 2>"$tmp/apt.err"); then
    log "apt-get download failed; updating the package lists once (apt-get update)"
    apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null)
  fi
  check "$tmp/$deb" "$deb_sha" || { echo "corpus: $deb does not have the pinned sha256" >&2; exit 1; }
  dpkg-deb -x "$tmp/$deb" "$tmp/x"
  python3 - "$tmp/x/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb" "$tmp/$name" <<'EOF'
import struct, sys, zlib

data, pos, novels = open(sys.argv[1], "rb").read(), 0, []
while pos < len(data):  # [u32 BE length][zlib stream of an R serialization], one per novel
    (n,) = struct.unpack_from(">I", data, pos)
    z = zlib.decompressobj()
    raw = z.decompress(data[pos + 4:])
    assert len(raw) == n and z.eof and raw[:2] == b"X\n", "not an R data stream"
    pos = len(data) - len(z.unused_data)
    (version,) = struct.unpack_from(">i", raw, 2)
    at = 14 + (4 + struct.unpack_from(">i", raw, 14)[0] if version == 3 else 0)
    flags, length = struct.unpack_from(">ii", raw, at)
    assert flags & 0xFF == 16, "not a character vector"  # STRSXP
    at, lines = at + 8, []
    for _ in range(length):
        flags, size = struct.unpack_from(">ii", raw, at)
        assert flags & 0xFF == 9 and size >= 0, "not a string"  # CHARSXP, not NA
        lines.append(raw[at + 8 : at + 8 + size])
        at += 8 + size
    novels.append(b"\n".join(lines) + b"\n")
open(sys.argv[2], "wb").write(b"".join(novels))
EOF
  check "$tmp/$name" "$text_sha" || { echo "corpus: $name does not have the pinned sha256" >&2; exit 1; }
  mv "$tmp/$name" "$dir/$name.part"
  mv "$dir/$name.part" "$dir/$name"
fi
echo "$dir/$name"
