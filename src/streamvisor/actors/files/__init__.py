"""The file actor: uploads with MIME sniffing and the API's rules, reads confined to the allowed
roots, image and file input parts (``FilesHandle``).
"""

from __future__ import annotations

from ._actor import FileActor, FilesStatistics
from ._errors import (
    AnimatedGifNotAllowed,
    AnimatedImageNotAllowed,
    AssistantsShapeNotAllowed,
    DeclaredTypeMismatch,
    EmptyFile,
    FileAccessError,
    FileInputError,
    FileRejected,
    FileTooLarge,
    FileUploadFailed,
    InvalidDataURL,
    InvalidFileId,
    InvalidFileName,
    InvalidInputPart,
    MalformedFile,
    MissingFile,
    NotARegularFile,
    OutsideAllowedRoots,
    PathIsADirectory,
    RequestLimitExceeded,
    TooManyPixels,
    UnknownPurpose,
    UnreadableFile,
    UnsupportedFileType,
)
from ._handle import FilesHandle
from ._inputs import (
    InputTotals,
    chat_file_part,
    chat_image_part,
    file_input,
    image_input,
    validate_input,
    validate_inputs,
)
from ._roots import ReadableRoots
from ._rules import FileRules, Purpose
from ._sniff import SniffResult, check_declared_type

__all__ = [
    "AnimatedGifNotAllowed",
    "AnimatedImageNotAllowed",
    "AssistantsShapeNotAllowed",
    "DeclaredTypeMismatch",
    "EmptyFile",
    "FileAccessError",
    "FileActor",
    "FileInputError",
    "FileRejected",
    "FileRules",
    "FileTooLarge",
    "FileUploadFailed",
    "FilesHandle",
    "FilesStatistics",
    "InputTotals",
    "InvalidDataURL",
    "InvalidFileId",
    "InvalidFileName",
    "InvalidInputPart",
    "MalformedFile",
    "MissingFile",
    "NotARegularFile",
    "OutsideAllowedRoots",
    "PathIsADirectory",
    "Purpose",
    "ReadableRoots",
    "RequestLimitExceeded",
    "SniffResult",
    "TooManyPixels",
    "UnknownPurpose",
    "UnreadableFile",
    "UnsupportedFileType",
    "chat_file_part",
    "chat_image_part",
    "check_declared_type",
    "file_input",
    "image_input",
    "validate_input",
    "validate_inputs",
]
