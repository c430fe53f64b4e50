#!/bin/sh
# apache/kafka's KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS (their PLAINTEXT entries) as
# tansu's --listener-url and --advertised-listener-url. Data is kept in memory.
set -eu
plaintext() { printf "%s" "$1" | tr ',' '\n' | sed -n 's|^PLAINTEXT://||p' | head -n 1; }
listen=$(plaintext "${KAFKA_LISTENERS:-PLAINTEXT://:9092}")
advertised=$(plaintext "${KAFKA_ADVERTISED_LISTENERS:-PLAINTEXT://localhost:9092}")
case "$listen" in
  :*) listen="0.0.0.0$listen" ;;
esac
exec tansu broker --listener-url "tcp://$listen" --advertised-listener-url "tcp://$advertised"
