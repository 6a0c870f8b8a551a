"""The event store: inference, feedback and decision events behind one interface."""

from .base import EventStore, FeedbackRecord, InferenceEvent, open_event_store

__all__ = ["EventStore", "FeedbackRecord", "InferenceEvent", "open_event_store"]
