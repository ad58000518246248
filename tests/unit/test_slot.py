from __future__ import annotations

import pytest

from postfork._slot import TRANSITIONS, Event, Slot, SlotState
from postfork.errors import StateError


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
