# http_lib.sh — helpers for the HTTP e2e tests (sourced after lib.sh).
# free_port: a TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it).
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'
}
# start_http_daemon [aoqd options...]: start_daemon with --http on a free loopback port; sets
# PORT and BASE, waits until the HTTP listener answers.
start_http_daemon() {
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"
  start_daemon --http "127.0.0.1:$PORT" "$@"
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$BASE/health" && return 0
    sleep 0.1
  done
  fail "the HTTP listener did not answer on $BASE"
}
