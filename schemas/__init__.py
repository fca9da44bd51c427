"""Marshmallow schemas of every Herd object and API request body.

Pure: imports nothing of the project but `vocabulary` (the enums its fields take) and
does no I/O. Used by `store` (codec checks), `server` (request validation, OpenAPI) and
`ctl` (client-side validation, formatting).
"""

from schemas.common import (
    API_VERSION,
    DEFAULT_FENCE_TIMEOUT,
    DEFAULT_SELF_FENCE_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    MAX_SHUTDOWN_TIMEOUT,
    MAX_WAIT_TIMEOUT,
    ObjectMetaSchema,
)
from schemas.domainxml import (
    MAX_XML_BYTES,
    DomainResources,
    domain_name,
    domain_resources,
    normalize_domain_xml,
    parse_domain_xml,
)
from schemas.names import MAX_NAME_LEN, NAME_RE, Name, is_valid_name, validate_name
from schemas.node import (
    ClusterConfigSchema,
    NodeResourcesSchema,
    NodeSchema,
    NodeSpecSchema,
    NodeStatusSchema,
    ObjectSchema,
    load_object,
)
from schemas.operations import (
    ApplyRequest,
    DeleteQuery,
    ErrorBody,
    ErrorSchema,
    NodeDomainStateRequest,
    VMListQuery,
    VMNodeRequest,
    VMRenameRequest,
    VMStateRequest,
    compile_limit,
)
from schemas.requests import (
    VMDefineRequest,
    VMMetaRequest,
    VMModifyRequest,
    define_request_to_vm,
    merge_patch,
    meta_patch,
    vm_spec_patch,
)
from schemas.vm import (
    ConditionSchema,
    MigrationSchema,
    PlacementSchema,
    VMMetaSchema,
    VMSchema,
    VMSpecSchema,
    VMStatusSchema,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_FENCE_TIMEOUT",
    "DEFAULT_SELF_FENCE_TIMEOUT",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "MAX_NAME_LEN",
    "MAX_SHUTDOWN_TIMEOUT",
    "MAX_WAIT_TIMEOUT",
    "MAX_XML_BYTES",
    "NAME_RE",
    "ApplyRequest",
    "ClusterConfigSchema",
    "ConditionSchema",
    "DeleteQuery",
    "DomainResources",
    "ErrorBody",
    "ErrorSchema",
    "MigrationSchema",
    "Name",
    "NodeDomainStateRequest",
    "NodeResourcesSchema",
    "NodeSchema",
    "NodeSpecSchema",
    "NodeStatusSchema",
    "ObjectMetaSchema",
    "ObjectSchema",
    "PlacementSchema",
    "VMDefineRequest",
    "VMListQuery",
    "VMMetaRequest",
    "VMMetaSchema",
    "VMModifyRequest",
    "VMNodeRequest",
    "VMRenameRequest",
    "VMSchema",
    "VMSpecSchema",
    "VMStateRequest",
    "VMStatusSchema",
    "compile_limit",
    "define_request_to_vm",
    "domain_name",
    "domain_resources",
    "is_valid_name",
    "load_object",
    "merge_patch",
    "meta_patch",
    "normalize_domain_xml",
    "parse_domain_xml",
    "validate_name",
    "vm_spec_patch",
]
