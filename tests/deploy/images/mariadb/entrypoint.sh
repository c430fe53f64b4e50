#!/bin/sh
# First start on an empty /var/lib/mysql: create the system tables, then the root password,
# the database and the account from MARIADB_ROOT_PASSWORD, MARIADB_DATABASE, MARIADB_USER
# and MARIADB_PASSWORD. Then run mariadbd in the foreground on 0.0.0.0:3306.
set -eu
datadir=/var/lib/mysql
quote() { printf "%s" "$1" | sed "s/'/''/g"; }
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal > /dev/null
  {
    echo "FLUSH PRIVILEGES;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(quote "$MARIADB_ROOT_PASSWORD")';"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [ -n "${MARIADB_USER:-}" ]; then
      echo "CREATE USER '$(quote "$MARIADB_USER")'@'%' IDENTIFIED BY '$(quote "$MARIADB_PASSWORD")';"
      echo "GRANT ALL ON \`${MARIADB_DATABASE:-*}\`.* TO '$(quote "$MARIADB_USER")'@'%';"
    fi
  } | mariadbd --user=mysql --datadir="$datadir" --bootstrap --skip-networking
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306
