//! Reports: JSON (byte-for-byte deterministic), Markdown and plots.
