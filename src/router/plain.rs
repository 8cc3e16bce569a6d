//! The bridge between the control socket's opaque payloads and WAMP args/kwargs.
