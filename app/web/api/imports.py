"""`POST /api/v1/campaigns/{id}/imports`: a lead file uploaded as multipart form data, imported with the rules,
options and report of `outbound import-leads`.

The size is checked from Content-Length before the body is read, and again while the file is read, so an upload
over the cap is refused with 413 without being stored anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from app.domain.importing import FORMATS
from app.ops import imports
from app.web.api import models
from app.web.api.errors import audited
from app.web.auth import Principal, Role, audit, require

OPERATOR = Depends(require(Role.OPERATOR))
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_FORM_OVERHEAD = 64 * 1024  # the other fields and the multipart boundaries
MAX_FIELDS = 30
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")

_FIELDS: dict[str, Any] = {
    "file": {"type": "string", "format": "binary", "description": "CSV, JSON, JSON Lines or .xlsx (at most 20 MB)."},
    "format": {"type": "string", "enum": list(FORMATS), "default": "auto"},
    "delimiter": {"type": "string", "description": "A CSV's cell separator: , ; tab | (default: detected)."},
    "encoding": {"type": "string", "description": "e.g. cp1252 (default: UTF-8, or UTF-16 by its BOM)."},
    "map": {"type": "array", "items": {"type": "string"}, "description": 'FIELD=COLUMN, e.g. email="Work Email".'},
    "sheet": {"type": "string", "description": "The .xlsx sheet (default: the first)."},
    "group_by": {"type": "string", "description": "Rows sharing this column become one lead."},
    "dry_run": {"type": "boolean", "default": False, "description": "Report and preview; write nothing."},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": _FIELDS}}},
    }
}


class Refused(Exception):
    """An upload refused before the import ran: the HTTP status and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def declared_size(request: Request) -> int:
    """The upload's Content-Length, checked before anything reads the body (the session's CSRF check would
    parse the form): 411 without one, 413 over the cap. Refused before the caller is known, so not audited."""
    raw = request.headers.get("content-length")
    if raw is None or not raw.isdigit():
        raise HTTPException(411, "send the upload with a Content-Length header (a multipart form with the file)")
    size = int(raw)
    if size > MAX_UPLOAD_BYTES + MAX_FORM_OVERHEAD:
        detail = f"file: the upload is {size:,} bytes; at most {MAX_UPLOAD_BYTES // 2**20} MB is accepted"
        raise HTTPException(413, detail)
    return size


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(422, f"{name}: give text, not a file")
    return value if value.strip() else None


def _dry_run(form: FormData) -> bool:
    value = (_text(form, "dry_run") or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise Refused(422, f"dry_run: {value!r} is not true or false")


def options_of(form: FormData) -> imports.UploadOptions:
    """The import options of the form's fields; Refused (422) naming a field that is not valid."""
    maps = form.getlist("map")
    if any(not isinstance(m, str) for m in maps):
        raise Refused(422, "map: give FIELD=COLUMN text, not a file")
    return imports.UploadOptions(
        format=_text(form, "format") or "auto",
        delimiter=_text(form, "delimiter"),
        encoding=_text(form, "encoding"),
        mapping=imports.mapping_items([str(m) for m in maps]),
        sheet=_text(form, "sheet"),
        group_by=_text(form, "group_by"),
        dry_run=_dry_run(form),
    )


async def _upload(request: Request) -> tuple[str, bytes, imports.UploadOptions]:
    try:
        form = await request.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FORM_OVERHEAD)
    except MultiPartException as exc:
        raise Refused(422, f"the body is not a usable multipart form: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Refused(422, "file: missing; send the lead file as the multipart field `file`")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refused(413, f"file: larger than {MAX_UPLOAD_BYTES // 2**20} MB; split it and upload the parts")
    return upload.filename or "upload", data, options_of(form)


def imports_router() -> APIRouter:
    """The import route, for operators."""
    router = APIRouter(prefix="/api/v1/campaigns", tags=["imports"])

    @router.post("/{campaign_id}/imports", response_model=models.ImportReport, openapi_extra=_BODY)
    async def import_leads(
        campaign_id: str, request: Request, size: int = Depends(declared_size), principal: Principal = OPERATOR
    ) -> models.ImportReport:
        """Import leads from an uploaded file (multipart field `file`, at most 20 MB) with `import-leads`' options
        as form fields; the answer is its `--json` report. Importing the same file again adds nothing."""
        target = {"campaign_id": campaign_id}
        try:
            filename, data, options = await _upload(request)
        except Refused as exc:
            await audit(request, principal, "leads.import", target, outcome="refused", details={"error": exc.message})
            raise HTTPException(exc.status, exc.message) from None
        db = request.app.state.db
        done = await audited(
            request,
            principal,
            "leads.import",
            {**target, "file": filename},
            lambda: imports.import_csv(db, campaign_id, data, filename, options, datetime.now(UTC)),
            lambda d: {k: v for k, v in d.report.to_dict().items() if isinstance(v, int | bool)},
        )
        body = {"file": done.filename, **done.report.to_dict(), "all_rejected": done.report.all_rejected}
        return models.ImportReport.model_validate(models.jsonable(body))

    return router
