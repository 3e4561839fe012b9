#!/usr/bin/env bash
# Renders pages of the documentation site in headless Chromium with every host
# but this machine's loopback blocked, saves a screenshot of each, and checks
# that MathJax typeset the formulas (math elements in the rendered DOM, no raw
# TeX left) and drew them (its main font was fetched from the site). Look at
# the screenshots too.
# Run by hand; not part of .ci/test. Needs Debian's chromium
# (apt-get install -y chromium) and the project's .venv.
#
#   bash .ci/screenshot_math.sh [OUT_DIR]        # default /tmp/math_screenshots
#
# SITE_DIR (default: a fresh `mkdocs build --strict` in a temporary folder)
# and PAGES (default: "concepts/ tutorials/01_soft_variable_discretization/")
# choose what is rendered.
#
# The block: Chromium sends every request for another host to a "proxy" on
# 127.0.0.1 that only records the request line and closes the connection, and
# resolves no host name but localhost. Before the pages, a probe checks that a
# request for a CDN address is refused and recorded there while the site on
# 127.0.0.1 answers. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
CHROMIUM="${CHROMIUM:-chromium}"
OUT_DIR="${1:-/tmp/math_screenshots}"
PAGES="${PAGES:-concepts/ tutorials/01_soft_variable_discretization/}"
command -v "$CHROMIUM" >/dev/null || {
  echo "needs chromium: apt-get install -y chromium" >&2
  exit 2
}
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT_DIR"

if [ -z "${SITE_DIR:-}" ]; then
  SITE_DIR="$WORK/site"
  "$PY" -m mkdocs build --strict --quiet --site-dir "$SITE_DIR"
fi
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SITE_PORT="$(free_port)"
SINK_PORT="$(free_port)"
SINK_LOG="$WORK/blocked_requests.log"
: >"$SINK_LOG"

# Served from a folder of its own: the site (a link) and the probe page beside it.
ROOT="$WORK/root"
mkdir -p "$ROOT"
ln -s "$(cd "$SITE_DIR" && pwd)" "$ROOT/site"
"$PY" -m http.server "$SITE_PORT" --bind 127.0.0.1 --directory "$ROOT" \
  >>"$WORK/http.log" 2>&1 &
PIDS+=("$!")
# The sink: records the first line of each request (CONNECT host:443 ...), answers
# nothing.
"$PY" - "$SINK_PORT" "$SINK_LOG" >"$WORK/sink.log" 2>&1 <<'EOF_SINK' &
import socket
import sys

port, log = int(sys.argv[1]), sys.argv[2]
server = socket.create_server(("127.0.0.1", port))
while True:
    connection, _ = server.accept()
    connection.settimeout(2)
    try:
        line = connection.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
    except OSError:
        line = "(no request line)"
    with open(log, "a") as file:
        file.write(line + "\n")
    connection.close()
EOF_SINK
PIDS+=("$!")
for _ in $(seq 50); do
  if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$SITE_PORT/site/')" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

chrome() {
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --disable-extensions --no-pings \
    --user-data-dir="$(mktemp -d -p "$WORK")" \
    --proxy-server="http://127.0.0.1:$SINK_PORT" --proxy-bypass-list="127.0.0.1" \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1" \
    --window-size=1280,1600 --hide-scrollbars --virtual-time-budget=20000 \
    "$@" 2>>"$WORK/chromium.log"
}

echo "=== probe: loopback reachable, other hosts blocked ==="
PROBE_URL="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
cat >"$ROOT/probe.html" <<EOF_PROBE
<!doctype html><html><body><pre id="out">pending</pre><script>
async function probe(url) {
  try { await fetch(url, {mode: "no-cors", cache: "no-store"}); return "reached"; }
  catch (error) { return "blocked"; }
}
(async () => {
  const local = await probe("http://127.0.0.1:$SITE_PORT/site/index.html");
  const remote = await probe("$PROBE_URL");
  document.getElementById("out").textContent = "loopback=" + local + " remote=" + remote;
})();
</script></body></html>
EOF_PROBE
probe="$(chrome --dump-dom "http://127.0.0.1:$SITE_PORT/probe.html")"
result="$(grep -o 'loopback=[a-z]* remote=[a-z]*' <<<"$probe" || true)"
echo "probe: ${result:-no result}; recorded by the sink: $(tr '\n' ' ' <"$SINK_LOG")"
if [ "$result" != "loopback=reached remote=blocked" ] || ! grep -q "cdn.jsdelivr.net" "$SINK_LOG"; then
  echo "the network block does not work as intended" >&2
  exit 1
fi
: >"$SINK_LOG"

status=0
for page in $PAGES; do
  name="$(tr '/' '_' <<<"${page%/}")"
  url="http://127.0.0.1:$SITE_PORT/site/$page"
  : >"$WORK/http.log"
  chrome --screenshot="$OUT_DIR/$name.png" "$url" >/dev/null
  # Formulas drawn in the screenshot fetch MathJax's main font from the site;
  # math elements that lost their glyph styles (blank formulas) do not.
  fonts="$(grep -a -c 'fonts/woff-v2/MathJax_Main-Regular\.woff HTTP/[0-9.]*" 200' "$WORK/http.log" || true)"
  dom="$(chrome --dump-dom "$url")"
  typeset="$(grep -o '<mjx-container' <<<"$dom" | wc -l || true)"
  raw="$(grep -oE 'class="arithmatex">\\[\(\[]|<p>\$\$' <<<"$dom" | wc -l || true)"
  echo "$page: $typeset formulas typeset, $raw left as raw TeX," \
    "MathJax_Main font loaded $fonts time(s) -> $OUT_DIR/$name.png"
  if [ "$typeset" -eq 0 ] || [ "$raw" -ne 0 ] || [ "$fonts" -eq 0 ]; then
    status=1
  fi
done
if [ -s "$SINK_LOG" ]; then
  echo "requests for other hosts, all blocked (Chromium's own update and time"
  echo "requests land here too):"
  sort "$SINK_LOG" | uniq -c
else
  echo "the pages asked for no other host"
fi
exit "$status"
