"""Sharing agreements, the patient directory and the grants projection (SQLAlchemy Core).

Row-level security decides which agreements a caller sees: the ones its practice
granted, and the ones naming its practice as the grantee.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gpsoc_kit.uow import UnitOfWork
from sqlalchemy import func, insert, select, update

from ..domain.sharing import Agreement
from .tables import patient_directory, sharing_agreement_versions, sharing_agreements


@dataclass(frozen=True)
class StoredAgreement:
    id: str
    grantor: str
    version_id: int
    resource: dict[str, Any]


class AgreementRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def add(
        self,
        agreement_id: str,
        agreement: Agreement,
        resource: dict[str, Any],
        *,
        at: dt.datetime,
        recorded_by: str,
    ) -> None:
        await self._uow.conn.execute(
            insert(sharing_agreements).values(
                id=agreement_id,
                practice_code=agreement.grantor,
                version_id=1,
                last_updated=at,
                resource=resource,
                **_columns(agreement),
            )
        )
        await self._add_version(agreement_id, agreement.grantor, 1, resource, at, recorded_by)

    async def replace(
        self,
        current: StoredAgreement,
        agreement: Agreement,
        resource: dict[str, Any],
        *,
        at: dt.datetime,
        recorded_by: str,
    ) -> bool:
        """The next version, only if `current` is still the latest (else False)."""
        version_id = current.version_id + 1
        result = await self._uow.conn.execute(
            update(sharing_agreements)
            .where(
                sharing_agreements.c.id == current.id,
                sharing_agreements.c.version_id == current.version_id,
            )
            .values(
                version_id=version_id, last_updated=at, resource=resource, **_columns(agreement)
            )
        )
        if result.rowcount != 1:
            return False
        await self._add_version(
            current.id, agreement.grantor, version_id, resource, at, recorded_by
        )
        return True

    async def get(self, agreement_id: str) -> StoredAgreement | None:
        row = (
            await self._uow.conn.execute(
                select(
                    sharing_agreements.c.id,
                    sharing_agreements.c.practice_code,
                    sharing_agreements.c.version_id,
                    sharing_agreements.c.resource,
                ).where(sharing_agreements.c.id == agreement_id)
            )
        ).first()
        return (
            StoredAgreement(row.id, row.practice_code, row.version_id, row.resource)
            if row
            else None
        )

    async def search(
        self, *, active: bool | None, grantee: str | None, offset: int, count: int
    ) -> tuple[list[dict[str, Any]], int]:
        criteria = []
        if active is not None:
            criteria.append(sharing_agreements.c.active.is_(active))
        if grantee is not None:
            criteria.append(sharing_agreements.c.grantee_practice == grantee)
        total = (
            await self._uow.conn.execute(
                select(func.count()).select_from(sharing_agreements).where(*criteria)
            )
        ).scalar_one()
        rows = (
            await self._uow.conn.execute(
                select(sharing_agreements.c.resource)
                .where(*criteria)
                .order_by(sharing_agreements.c.starts_at, sharing_agreements.c.id)
                .offset(offset)
                .limit(count)
            )
        ).scalars()
        return list(rows), total

    async def _add_version(
        self,
        agreement_id: str,
        practice: str,
        version_id: int,
        resource: dict[str, Any],
        at: dt.datetime,
        recorded_by: str,
    ) -> None:
        await self._uow.conn.execute(
            insert(sharing_agreement_versions).values(
                agreement_id=agreement_id,
                version_id=version_id,
                practice_code=practice,
                recorded_at=at,
                recorded_by=recorded_by,
                resource=resource,
            )
        )


async def practice_of_patient(uow: UnitOfWork, patient_id: str) -> str | None:
    """The practice holding `patient_id`, whichever it is (break-glass only)."""
    return (
        await uow.conn.execute(
            select(patient_directory.c.practice_code).where(
                patient_directory.c.patient_id == patient_id
            )
        )
    ).scalar_one_or_none()


def _columns(agreement: Agreement) -> dict[str, Any]:
    return {
        "grantee_practice": agreement.grantee,
        "scopes": list(agreement.scopes),
        "starts_at": agreement.start,
        "ends_at": agreement.end,
        "active": agreement.active,
    }
