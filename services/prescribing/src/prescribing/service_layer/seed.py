"""Demo data: the curated dm+d subset and the SAMPLE knowledge base (nothing patient-specific:
patients arrive through patient-index's events like any registration)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.dmd_import import load_release, parse_release
from ..adapters.knowledge_base import load_knowledge_base
from ..reference import DEMO_DMD_RELEASE, SAMPLE_KNOWLEDGE_BASE


async def seed_demo(engine: AsyncEngine) -> dict[str, object]:
    """Idempotent: the formulary is upserted and the knowledge base replaced."""
    formulary = await load_release(engine, parse_release(DEMO_DMD_RELEASE))
    knowledge = await load_knowledge_base(engine, SAMPLE_KNOWLEDGE_BASE)
    return {"formulary": formulary, "knowledgeBase": knowledge}
