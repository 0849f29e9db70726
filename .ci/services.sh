#!/usr/bin/env bash
# Make sure the services and binaries the tests need are here and up. Installs missing Debian
# packages, starts a stopped service with the machine's own start command, and fails (never skips)
# when something still is not there.
set -uo pipefail

need_pkgs=()
command -v mariadbd >/dev/null || need_pkgs+=(mariadb-server)
command -v mariadb-install-db >/dev/null || need_pkgs+=(mariadb-server)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v rabbitmq-server >/dev/null || need_pkgs+=(rabbitmq-server)
# A private Postfix instance is the peer of tests/test_postfix.py (policy service, LMTP, pipe).
command -v postfix >/dev/null || need_pkgs+=(postfix)
# A private Dovecot instance is the peer of tests/test_imap_sync.py and tests/test_pop3_sync.py.
[ -x /usr/lib/dovecot/imap ] || need_pkgs+=(dovecot-imapd)
[ -x /usr/lib/dovecot/pop3 ] || need_pkgs+=(dovecot-pop3d)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q "${need_pkgs[@]}" || { echo "FAIL: could not install ${need_pkgs[*]}"; exit 1; }
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # name port start-command...
  local name=$1 port=$2; shift 2
  if port_open "$port"; then echo "ok: $name on 127.0.0.1:$port"; return 0; fi
  echo "$name is not answering on $port; starting it"
  "$@" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    if port_open "$port"; then echo "ok: $name on 127.0.0.1:$port"; return 0; fi
    sleep 1
  done
  echo "FAIL: $name is not running on 127.0.0.1:$port"; return 1
}

rc=0
for bin in postfix postmap postqueue; do
  command -v "$bin" >/dev/null || { echo "FAIL: $bin is missing (Debian package postfix)"; rc=1; }
done
[ $rc -eq 0 ] && echo "ok: Postfix $(postconf -h mail_version 2>/dev/null)"
dovecot_rc=0
for bin in /usr/sbin/dovecot /usr/lib/dovecot/imap /usr/lib/dovecot/pop3; do
  [ -x "$bin" ] || { echo "FAIL: $bin is missing (Debian packages dovecot-imapd dovecot-pop3d)"; dovecot_rc=1; }
done
[ $dovecot_rc -eq 0 ] && echo "ok: Dovecot $(dovecot --version 2>/dev/null)" || rc=1
# The tests run private instances on free ports; a system Dovecot started by the package is not needed.
if pgrep -x dovecot >/dev/null 2>&1 && [ -f /run/dovecot/master.pid ]; then
  echo "stopping the system Dovecot the package started"
  dovecot stop >/dev/null 2>&1 || kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
fi
wait_port MariaDB 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || rc=1
wait_port Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log || rc=1
wait_port RabbitMQ 5672 rabbitmq-server -detached || rc=1
# RabbitMQ opens its port before it accepts AMQP logins; wait until it does.
if [ $rc -eq 0 ]; then
  for _ in $(seq 1 60); do
    rabbitmqctl -q status >/dev/null 2>&1 && break
    sleep 1
  done
  rabbitmqctl -q status >/dev/null 2>&1 || { echo "FAIL: RabbitMQ is not ready"; rc=1; }
fi
exit $rc
