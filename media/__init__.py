"""Attachment storage and access: content-addressed files under the data directory, types sniffed
from the bytes, and short-lived signed download links."""
