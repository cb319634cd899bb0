"""FastAPI dependencies: the unit of work scoped to the caller's practice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from gpsoc_kit.http import CurrentPrincipal
from gpsoc_kit.uow import UnitOfWork


async def unit_of_work(request: Request, principal: CurrentPrincipal) -> AsyncIterator[UnitOfWork]:
    async with request.app.state.uow_factory(principal.practice) as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(unit_of_work)]
