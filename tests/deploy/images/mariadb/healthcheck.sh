#!/bin/sh
# The checks compose/docker-compose.backend.yml asks for: --connect (the server answers a
# query) and --innodb_initialized (InnoDB is up). Any other argument is refused.
set -eu
for check in "$@"; do
  case "$check" in
    --connect|--innodb_initialized) ;;
    *) echo "healthcheck.sh: unknown check $check" >&2; exit 2 ;;
  esac
done
answer=$(mariadb --protocol=socket -uroot -p"$MARIADB_ROOT_PASSWORD" -N -e \
  "SELECT SUPPORT FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB'")
case "$answer" in
  YES|DEFAULT) exit 0 ;;
  *) exit 1 ;;
esac
