"""What deployment messages from a terminal do: `config.status` advances its target; a `hello` with
the wrong config queues the push again; `meters` that answer the host's request release the push.

Pushes are published by the gateway after the batch commits (ctx.outgoing), never before.
"""
from __future__ import annotations

from terminals import deployments, dispatch
from terminals.dispatch import Apply, handles


@handles("config.status")
def on_config_status(ctx: Apply) -> None:
    b = ctx.up.body
    deployments.on_status(ctx.session, ctx.terminal, b.deployment_id, b.state, b.sha256, b.reason, ctx.now)


def _on_hello(ctx: Apply) -> None:
    deployments.on_hello(ctx.session, ctx.terminal, ctx.now)


def _on_meters(ctx: Apply) -> None:
    send = deployments.on_meters(ctx.session, ctx.terminal, ctx.now)
    if send is not None:
        ctx.outgoing.append((send.egm_id, "config.push", send.body))


dispatch.HELLO_HOOKS.append(_on_hello)
dispatch.METERS_HOOKS.append(_on_meters)
