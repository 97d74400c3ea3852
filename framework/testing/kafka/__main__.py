"""``python -m framework.testing.kafka``: run a local Kafka broker until Ctrl-C."""

from framework.testing.kafka.cli import main

raise SystemExit(main())
