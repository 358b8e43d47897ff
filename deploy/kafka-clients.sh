#!/usr/bin/env bash
# Installs the real Kafka clients the compatibility suite (tests/kafka_compat.rs) runs:
# Debian's kcat, and confluent-kafka (its wheel bundles a current librdkafka) and
# kafka-python, with the codecs they need, in a virtualenv at target/kafka-clients.
# Idempotent: a second run with everything in place only checks it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/kafka-clients
PYPI_PACKAGES=(confluent-kafka kafka-python python-snappy lz4 zstandard)

if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
  else
    echo "kafka-clients: kcat is missing and apt-get cannot install it here" >&2
    exit 1
  fi
fi

if ! "$VENV/bin/python" -c 'import confluent_kafka, kafka, snappy, lz4, zstandard' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PYPI_PACKAGES[@]}"
fi

echo "kafka-clients: kcat $(kcat -V 2>&1 | head -1 | awk '{print $2}'), $("$VENV/bin/python" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)')"
