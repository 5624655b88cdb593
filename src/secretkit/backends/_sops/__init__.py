"""The SOPS file format, read in-process: file formats, value cipher and MAC, key services."""
