"""The event store: inference, feedback and decision events behind one interface."""

from .base import EventStore, FeedbackRecord, InferenceEvent
from .opener import open_event_store
from .settings import EventsSettings

__all__ = ["EventStore", "EventsSettings", "FeedbackRecord", "InferenceEvent", "open_event_store"]
