from __future__ import annotations

import os

import pytest

from postfork.errors import StateError
from postfork.pool.slot import Slot
from postfork.pool.state import (
    POOL_TRANSITIONS,
    PoolEvent,
    PoolMode,
    SlotState,
    transition,
)
from postfork.pool.state import SLOT_TRANSITIONS as TRANSITIONS
from postfork.pool.state import SlotEvent as Event


def test_every_state_but_the_terminal_ones_can_be_left() -> None:
    sources = {state for state, _ in TRANSITIONS}
    assert sources == {SlotState.CONNECTING, SlotState.IDLE, SlotState.IN_USE}


def test_a_normal_life_follows_the_table() -> None:
    slot = Slot(generation=0)
    for event, expected in [
        (Event.CONNECTED_FOR_IDLE, SlotState.IDLE),
        (Event.CHECKOUT, SlotState.IN_USE),
        (Event.CHECKIN, SlotState.IDLE),
        (Event.DISCARD, SlotState.CLOSED),
    ]:
        slot.move(event)
        assert slot.state is expected


@pytest.mark.parametrize(
    ("events", "illegal"),
    [
        ([], Event.CHECKIN),  # a connecting slot was never leased
        ([Event.CONNECTED_FOR_IDLE], Event.CHECKIN),  # returning a connection twice
        ([Event.CONNECTED_FOR_IDLE, Event.DISCARD], Event.CHECKOUT),  # using a closed connection
        ([Event.CONNECTED_FOR_LEASE, Event.FORK], Event.CHECKIN),  # returning an inherited one
    ],
)
def test_illegal_transitions_raise_instead_of_corrupting_the_pool(
    events: list[Event], illegal: Event
) -> None:
    slot = Slot(generation=0)
    for event in events:
        slot.move(event)
    with pytest.raises(StateError, match=illegal.value):
        slot.move(illegal)


# -- the pool's mode -------------------------------------------------------------------------


def test_a_master_serves_again_in_every_forked_child_and_a_closed_pool_stays_closed() -> None:
    assert POOL_TRANSITIONS[(PoolMode.MASTER, PoolEvent.FORK)] is PoolMode.SERVING
    assert POOL_TRANSITIONS[(PoolMode.CLOSED, PoolEvent.FORK)] is PoolMode.CLOSED
    assert POOL_TRANSITIONS[(PoolMode.CLOSED, PoolEvent.ENTER_MASTER)] is PoolMode.CLOSED
    assert {mode for mode, _ in POOL_TRANSITIONS} == set(PoolMode)  # every mode handles events
    assert len(POOL_TRANSITIONS) == len(PoolMode) * len(PoolEvent)  # no event left undefined


def test_an_event_the_table_lacks_raises_a_state_error() -> None:
    table = {(PoolMode.SERVING, PoolEvent.CLOSE): PoolMode.CLOSED}
    with pytest.raises(StateError, match="illegal pool transition: fork in state serving"):
        transition(table, PoolMode.SERVING, PoolEvent.FORK, "pool")


def test_a_slot_collected_in_a_child_is_abandoned_through_the_table() -> None:
    slot = Slot(generation=0)
    slot.move(Event.CONNECTED_FOR_IDLE)
    slot.owner_pid = -1  # as if this process were a child of the one that opened it
    slot.fd = os.open(os.devnull, os.O_RDONLY)
    try:
        slot.__del__()
        assert slot.state is SlotState.ABANDONED
    finally:
        os.close(slot.fd)
