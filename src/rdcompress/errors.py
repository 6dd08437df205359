"""Typed exceptions: one module, one base class.

Every message says what was received, what was expected, and how to fix it. The CLI turns any
``RDCompressError`` into a one-line message (tracebacks only with ``RDCOMPRESS_DEBUG=1``).
"""

from __future__ import annotations


class RDCompressError(Exception):
    """Base class of every error rdcompress raises on purpose."""


class ConfigError(RDCompressError, ValueError):
    """An impossible or inconsistent setting (a ratio outside (0, 1], k too large, ...)."""


class DatasetNotFoundError(RDCompressError, FileNotFoundError):
    """Dataset files are missing and could not be downloaded."""


class CorruptFileError(RDCompressError):
    """A file exists but its content is truncated, corrupted, or of a foreign format."""


class ChecksumError(CorruptFileError):
    """A file's checksum does not match the canonical one."""


class ModelError(RDCompressError):
    """A model cannot be built or its weights do not fit its architecture."""


class CheckpointError(ModelError):
    """A checkpoint file cannot be read or does not match the model."""


class ImportanceMismatchError(RDCompressError):
    """An importance file belongs to another model (names, shapes or weight hash differ)."""


class NonFiniteError(RDCompressError, FloatingPointError):
    """NaN or inf found in weights, outputs, or statistics; the message names where."""


class FormatError(CorruptFileError):
    """A ``.rdz`` file is truncated, corrupted, foreign, or of a newer format version."""


class OutputPathError(ConfigError, OSError):
    """An output path cannot be written (a directory, a parent that is a file, no permission)."""
