"""Broker isolation and redaction; reachability against a port nothing listens on."""
from __future__ import annotations

import pytest

from hangar.errors import BrokerUnreachable
from hangar.runtime import broker


def test_each_environment_has_its_own_queue_and_redis_key_prefix():
    redis = broker.isolation("redis://127.0.0.1:6379/0", "env-a")
    assert redis.queue == "hangar.env-a"
    assert redis.transport_options == {"global_keyprefix": "hangar.env-a:"}
    rabbit = broker.isolation("amqp://guest:guest@127.0.0.1:5672//", "env-a")
    assert rabbit.queue == "hangar.env-a" and rabbit.transport_options == {}
    assert broker.isolation("redis://x", "env-b").queue != redis.queue


def test_redact_masks_the_password_only():
    assert broker.redact("amqp://guest:s3cret@host:5672/vh") == "amqp://guest:***@host:5672/vh"
    assert broker.redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_url_that_is_not_a_broker_is_named():
    with pytest.raises(BrokerUnreachable, match="not a Redis or RabbitMQ URL"):
        broker.check_url("http://user:pw@host/")


def test_unreachable_broker_error_carries_the_clients_message_without_the_password():
    with pytest.raises(BrokerUnreachable) as caught:
        broker.check_reachable("amqp://guest:s3cret@127.0.0.1:1//", timeout=2)
    assert "s3cret" not in caught.value.message
    assert "127.0.0.1:1" in caught.value.message and "refused" in caught.value.message.lower()
