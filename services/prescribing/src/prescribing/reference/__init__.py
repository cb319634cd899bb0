"""Reference data shipped with the service: the demo dm+d release and the SAMPLE knowledge base."""

from pathlib import Path

REFERENCE_DIR = Path(__file__).parent
DEMO_DMD_RELEASE = REFERENCE_DIR / "demo_dmd"
SAMPLE_KNOWLEDGE_BASE = REFERENCE_DIR / "sample_knowledge_base.json"
