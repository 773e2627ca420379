"""The standard contract every connector plugin runs against itself.

Subclass :class:`ConnectorContract` in a test module, name the connector type and provide a
connection's settings that work against a running fake of your system::

    class TestMySisContract(ConnectorContract):
        connector_type = "my_sis"

        @pytest.fixture
        def connection_settings(self, my_fake_server):
            return {"base_url": my_fake_server.url, "api_key": {"env": "MY_SIS_KEY"}}

        @pytest.fixture
        def secret_env(self):
            return {"MY_SIS_KEY": "not-for-logs"}

The suite loads the installed plugins exactly as the hub does (entry points), builds a
connection through the config loader and calls the plugin's hooks: the type is declared sanely,
bad settings are refused with a clear error, the default mapping is valid, received or pulled
records map, the watermark moves forward, every send answers one outcome per message, the
connection check answers, a system that is down means "try again later" (never "sent"), and no
secret reaches a ``repr``, an error or a log line.  Give ``unreachable_settings`` to get the
last checks against a port where nothing listens.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from ..config import Connection, load_config
from ..connector import (
    CheckResult,
    ConnectorType,
    InboundRequest,
    OutboundMessage,
    PullResult,
    Received,
    SendOutcome,
    SourceRecord,
)
from ..exceptions import AzorusError, ConfigError, RetryableError
from ..model import Application, CanonicalRecord, Enquiry, EntityKind, Person
from ..plugins import PluginHost
from ..transform.mapping import Mapper, build_mapping

__all__ = ["ConnectorContract", "outbound_payload"]

_CAPABILITIES = frozenset({"receive", "pull", "send"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CONNECTION_NAME = "contract"
_MAX_PAGES = 1000


def outbound_payload(
    record: CanonicalRecord, hub_id: int, person: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A canonical record shaped like the snapshot an :class:`OutboundMessage` carries.

    People carry their ``hub_id`` and ``identifiers``; an enquiry or application carries its
    ``person`` (pass that person's payload), as the outbox queues them.
    """
    payload = record.model_dump(mode="json", exclude_none=False)
    payload["hub_id"] = hub_id
    if isinstance(record, (Enquiry, Application)):
        payload["person_id"] = person["hub_id"] if person else record.person.hub_id
        payload["person"] = person or {"identifiers": dict(record.person.identifiers)}
    return payload


class ConnectorContract:
    """Pytest test class a connector plugin subclasses (as ``Test...``) to prove it keeps the contract."""

    #: The name of the connector type under test (``type = "..."`` in the config).
    connector_type: ClassVar[str] = ""
    #: Pulling again from the watermark just returned gives nothing new (when nothing changed).
    watermark_is_exclusive: ClassVar[bool] = True

    # -- fixtures a plugin provides -------------------------------------------------------------

    @pytest.fixture
    def connection_settings(self) -> dict[str, Any]:
        """The ``[connections.X.settings]`` table of a connection to your running fake system."""
        raise NotImplementedError("provide a connection_settings fixture pointing at a fake of your system")

    @pytest.fixture
    def secret_env(self) -> dict[str, str]:
        """Environment variables the settings reference as secrets (name -> value); set for each test."""
        return {}

    @pytest.fixture
    def bad_settings(self, connection_settings: dict[str, Any], ctype: ConnectorType) -> list[dict[str, Any]]:
        """Settings the model must refuse: an unknown key, and each required setting left out. Extend it."""
        cases: list[dict[str, Any]] = [{**connection_settings, "no_such_setting_xyz": 1}]
        for name, info in ctype.settings_model.model_fields.items():
            if info.is_required():
                cases.append({k: v for k, v in connection_settings.items() if k != name})
        return cases

    @pytest.fixture
    def unreachable_settings(self, connection_settings: dict[str, Any]) -> dict[str, Any] | None:
        """Settings naming a system that does not answer, e.g. on a closed port (None: skip those checks)."""
        return None

    @pytest.fixture
    def inbound_request(self) -> InboundRequest | None:
        """For ``receive`` connectors: a request your system would send (``connection`` is set for you)."""
        return None

    @pytest.fixture
    def outbound_records(self) -> list[CanonicalRecord]:
        """For ``send`` connectors: records to send; by default the people the receive/pull test mapped."""
        return []

    @pytest.fixture
    def plugin_modules(self) -> Sequence[object]:
        """Plugin objects to register besides the installed entry points (for a plugin not installed)."""
        return ()

    # -- fixtures the suite builds ------------------------------------------------------------

    @pytest.fixture
    def plugin_host(self, plugin_modules: Sequence[object]) -> PluginHost:
        host = PluginHost.load(extra=plugin_modules)
        if self.connector_type not in host.connector_types():
            broken = [f"{i.name}: {i.error}" for i in host.infos if i.error]
            pytest.fail(
                f"connector type {self.connector_type!r} is not provided by any loaded plugin "
                f"(is the plugin installed? pip install -e .)"
                + (f"; broken plugins: {broken}" if broken else "")
            )
        return host

    @pytest.fixture
    def ctype(self, plugin_host: PluginHost) -> ConnectorType:
        return plugin_host.connector_types()[self.connector_type]

    @pytest.fixture
    def _secrets_set(self, secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
        for name, value in secret_env.items():
            monkeypatch.setenv(name, value)
        return secret_env

    @pytest.fixture
    def connection(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        connection_settings: dict[str, Any],
        _secrets_set: dict[str, str],
    ) -> Connection:
        return self._connection(plugin_host, ctype, connection_settings)

    def _connection(self, host: PluginHost, ctype: ConnectorType, settings: Mapping[str, Any]) -> Connection:
        directions = {}
        for kind in ctype.entity_kinds:
            inbound = bool({"receive", "pull"} & ctype.capabilities)
            outbound = "send" in ctype.capabilities
            directions[kind.value] = "both" if inbound and outbound else "send" if outbound else "receive"
        table = {"type": self.connector_type, "directions": directions, "settings": dict(settings)}
        config = load_config({"connections": {CONNECTION_NAME: table}}, host)
        return config.connection(CONNECTION_NAME)

    @pytest.fixture
    def mapper(self, plugin_host: PluginHost, connection: Connection) -> Mapper:
        return Mapper(connection.record_mapping, plugin_host.value_transforms())

    @pytest.fixture
    def received(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        connection: Connection,
        inbound_request: InboundRequest | None,
    ) -> Received:
        """Records from the plugin's receive hook (given ``inbound_request``) or else its pull hook."""
        if "receive" in ctype.capabilities and inbound_request is not None:
            inbound_request.connection = connection.name
            result = plugin_host.hook.azorus_receive(connection=connection, request=inbound_request)
            assert isinstance(result, Received), f"azorus_receive answered {result!r} for its own connection"
            return result
        if "pull" in ctype.capabilities:
            pulled = Received()
            watermark: str | None = None
            for _ in range(_MAX_PAGES):
                page = plugin_host.hook.azorus_pull(connection=connection, watermark=watermark)
                assert isinstance(page, PullResult), f"azorus_pull answered {page!r}, not a PullResult"
                pulled.records.extend(page.records)
                pulled.warnings.extend(page.warnings)
                watermark = page.watermark
                if not page.more:
                    return pulled
            pytest.fail(f"pull still answered more=True after {_MAX_PAGES} pages")
        pytest.fail("a receive connector's test must give an inbound_request fixture its system would send")

    @pytest.fixture
    def mapped(
        self,
        received: Received,
        mapper: Mapper,
        ctype: ConnectorType,
        plugin_host: PluginHost,
        connection: Connection,
    ) -> list[CanonicalRecord]:
        """The received records through the mapping and every ``azorus_transform_record``, as the hub does."""
        out: list[CanonicalRecord] = []
        for record in received.records:
            canonical = mapper.map(record) if isinstance(record, SourceRecord) else record
            source = dict(record.fields) if isinstance(record, SourceRecord) else {}
            for replacement in plugin_host.hook.azorus_transform_record(
                connection=connection, record=canonical, source=source
            ):
                if replacement is not None:
                    canonical = replacement
            assert canonical.kind in ctype.entity_kinds, (
                f"{canonical.kind} is not among the declared entity kinds"
            )
            out.append(canonical)
        return out

    # -- the contract ---------------------------------------------------------------------------

    def test_connector_type_is_declared_sanely(self, plugin_host: PluginHost, ctype: ConnectorType) -> None:
        assert _NAME.match(ctype.name), f"type name {ctype.name!r} should be lower_snake_case"
        assert issubclass(ctype.settings_model, BaseModel)
        assert ctype.capabilities and ctype.capabilities <= _CAPABILITIES, ctype.capabilities
        assert ctype.entity_kinds and all(isinstance(k, EntityKind) for k in ctype.entity_kinds)
        assert ctype.send_batch_size >= 1
        assert ctype.description, "describe the connector type in a line (shown by `azorus-connect plugins`)"
        hooks = {"receive": "azorus_receive", "pull": "azorus_pull", "send": "azorus_send"}
        for capability in ctype.capabilities:
            impls = getattr(plugin_host.hook, hooks[capability]).get_hookimpls()
            assert impls, (
                f"capability {capability!r} is declared but no plugin implements {hooks[capability]}"
            )

    def test_settings_model_refuses_bad_settings_clearly(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        bad_settings: list[dict[str, Any]],
        _secrets_set: dict[str, str],
    ) -> None:
        assert bad_settings, "give at least one bad settings table"
        for settings in bad_settings:
            with pytest.raises(ConfigError) as caught:
                self._connection(plugin_host, ctype, settings)
            error = caught.value
            assert error.key and error.key.startswith(f"connections.{CONNECTION_NAME}.settings"), error.key
            assert error.problem.strip(), f"no reason given for refusing {settings!r}"

    def test_default_mapping_is_valid(self, plugin_host: PluginHost, ctype: ConnectorType) -> None:
        mapping = build_mapping(ctype.default_mapping)
        Mapper(mapping, plugin_host.value_transforms())  # every named transform and value map exists
        for entity, rule in mapping.entities.items():
            assert rule.kind in ctype.entity_kinds, f"mapping {entity!r} targets undeclared kind {rule.kind}"
            assert rule.fields, f"mapping {entity!r} maps no fields"

    def test_received_or_pulled_records_map(self, received: Received, mapped: list[CanonicalRecord]) -> None:
        assert received.records, "the fake system should hold at least one record to receive or pull"
        assert len(mapped) == len(received.records)
        for record in mapped:
            if isinstance(record, Person):
                assert record.identifiers, f"a person without identifiers cannot be matched: {record!r}"

    def test_pull_watermark_moves_forward(
        self, plugin_host: PluginHost, ctype: ConnectorType, connection: Connection
    ) -> None:
        if "pull" not in ctype.capabilities:
            pytest.skip("the connector does not pull")
        watermark: str | None = None
        seen = 0
        for _ in range(_MAX_PAGES):
            page = plugin_host.hook.azorus_pull(connection=connection, watermark=watermark)
            assert isinstance(page, PullResult)
            assert page.watermark is not None, "a pull must return the watermark to continue from"
            seen += len(page.records)
            watermark = page.watermark
            if not page.more:
                break
        else:
            pytest.fail("pull kept answering more=True")
        assert seen, "the fake system should hold at least one record to pull"
        if self.watermark_is_exclusive:
            again = plugin_host.hook.azorus_pull(connection=connection, watermark=watermark)
            assert again.records == [], "pulling from the latest watermark returned records again"

    def test_send_answers_one_outcome_per_message(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        connection: Connection,
        outbound_records: list[CanonicalRecord],
        request: pytest.FixtureRequest,
    ) -> None:
        if "send" not in ctype.capabilities:
            pytest.skip("the connector does not send")
        records = outbound_records or request.getfixturevalue("mapped")
        records = [r for r in records if r.kind in ctype.entity_kinds]
        assert records, "give outbound_records (or let receive/pull map some) to send"
        messages = _messages(connection.name, records)
        for start in range(0, len(messages), ctype.send_batch_size):
            batch = messages[start : start + ctype.send_batch_size]
            outcomes = plugin_host.hook.azorus_send(connection=connection, messages=batch)
            assert isinstance(outcomes, list) and len(outcomes) == len(batch), outcomes
            assert [o.message_id for o in outcomes] == [m.id for m in batch], "outcomes out of message order"
            for outcome in outcomes:
                assert isinstance(outcome, SendOutcome) and outcome.status in ("sent", "retry", "failed")
                assert outcome.status != "failed" or outcome.reason, "a failed outcome needs a reason"
            assert any(o.status == "sent" for o in outcomes), f"nothing sent to a working system: {outcomes}"

    def test_check_connection_answers(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        connection: Connection,
        unreachable_settings: dict[str, Any] | None,
    ) -> None:
        result = plugin_host.hook.azorus_check_connection(connection=connection)
        if result is None and ctype.capabilities == {"receive"}:
            pytest.skip("a receive-only connector has no system to reach")
        assert isinstance(result, CheckResult), f"azorus_check_connection answered {result!r}"
        assert result.ok, f"the check failed against the working fake: {result.detail}"
        assert result.detail
        if unreachable_settings is not None:
            down = self._connection(plugin_host, ctype, unreachable_settings)
            failed = plugin_host.hook.azorus_check_connection(connection=down)
            assert isinstance(failed, CheckResult) and not failed.ok and failed.detail

    def test_a_system_that_is_down_means_try_again_later(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        unreachable_settings: dict[str, Any] | None,
        _secrets_set: dict[str, str],
        request: pytest.FixtureRequest,
    ) -> None:
        """Pull raises a retryable error; send answers ``retry`` (never ``sent``) or raises one."""
        if unreachable_settings is None or not {"pull", "send"} & ctype.capabilities:
            pytest.skip("no unreachable_settings given, or nothing to pull or send")
        down = self._connection(plugin_host, ctype, unreachable_settings)
        if "pull" in ctype.capabilities:
            with pytest.raises(RetryableError):
                plugin_host.hook.azorus_pull(connection=down, watermark=None)
        if "send" in ctype.capabilities:
            records = request.getfixturevalue("outbound_records") or request.getfixturevalue("mapped")
            batch = _messages(down.name, [r for r in records if r.kind in ctype.entity_kinds])
            batch = batch[: ctype.send_batch_size]
            try:
                outcomes = plugin_host.hook.azorus_send(connection=down, messages=batch)
            except RetryableError:
                return
            assert outcomes, "azorus_send answered nothing for its own connection"
            assert len(outcomes) <= len(batch)
            assert all(o.status == "retry" and o.reason for o in outcomes), outcomes

    def test_secrets_never_reach_repr_errors_or_logs(
        self,
        plugin_host: PluginHost,
        ctype: ConnectorType,
        connection: Connection,
        unreachable_settings: dict[str, Any] | None,
        _secrets_set: dict[str, str],
        caplog: pytest.LogCaptureFixture,
        request: pytest.FixtureRequest,
    ) -> None:
        """Every hook, against the working system and the unreachable one: no secret in what comes out."""
        secrets = [v for v in _secrets_set.values() if v]
        if not secrets:
            pytest.skip("the connector's settings reference no secrets")
        connections = [connection]
        if unreachable_settings is not None:
            connections.append(self._connection(plugin_host, ctype, unreachable_settings))
        records = request.getfixturevalue("outbound_records") or request.getfixturevalue("mapped")
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG):
            for conn in connections:
                seen += [repr(conn), str(conn), repr(conn.settings), str(conn.settings)]
                seen += _exercise(plugin_host, ctype, conn, records)
        seen.append(caplog.text)
        seen.extend(str(r.__dict__) for r in caplog.records)
        for secret in secrets:
            leaks = [text for text in seen if secret in text]
            assert not leaks, (
                f"a secret value appeared in a repr, an outcome, an error or a log: {leaks[0]!r}"
            )


def _messages(connection: str, records: Sequence[CanonicalRecord]) -> list[OutboundMessage]:
    """Outbound messages for ``records``; a link record's person is found among them by identifier."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    people = {n: outbound_payload(r, n) for n, r in enumerate(records, start=1) if isinstance(r, Person)}
    messages = []
    for n, record in enumerate(records, start=1):
        person_id: int | None = n if isinstance(record, Person) else None
        person = None
        if isinstance(record, (Enquiry, Application)):
            wanted = set(record.person.identifiers.items())
            person_id = next(
                (pid for pid, p in people.items() if wanted & set(p["identifiers"].items())), None
            )
            person = people.get(person_id) if person_id is not None else None
        messages.append(
            OutboundMessage(
                id=n,
                connection=connection,
                entity=record.kind,
                record_id=n,
                person_id=person_id,
                operation="upsert",
                payload=people.get(n) or outbound_payload(record, n, person),
                changed=sorted(record.model_fields_set),
                attempts=0,
                queued_at=now,
            )
        )
    return messages


def _exercise(
    host: PluginHost, ctype: ConnectorType, connection: Connection, records: Sequence[CanonicalRecord]
) -> list[str]:
    """Call every hook the type implements and return what each answered or raised, as text."""
    calls: list[Callable[[], Any]] = [lambda: host.hook.azorus_check_connection(connection=connection)]
    if "pull" in ctype.capabilities:
        calls.append(lambda: host.hook.azorus_pull(connection=connection, watermark=None))
    if "send" in ctype.capabilities:
        messages = _messages(connection.name, [r for r in records if r.kind in ctype.entity_kinds])
        calls.append(lambda: host.hook.azorus_send(connection=connection, messages=messages))
    out: list[str] = []
    for call in calls:
        try:
            out.append(repr(call()))
        except AzorusError as exc:
            out.append(f"{exc} {exc.detail} {exc.context} {exc!r}")
    return out
