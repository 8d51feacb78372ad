"""Install the automations of ``automations.yaml`` on the Prefect API of ``PREFECT_API_URL``.

    python infra/prefect/automations.py BLOCK_TYPE_SLUG/BLOCK_NAME   # e.g. slack-webhook/gsocseq-alerts

Each ``send-notification`` action gets the id of that notification block; an automation of the same
name is replaced, so running this again after an edit is safe.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore

AUTOMATIONS = Path(__file__).with_name("automations.yaml")


def load(block_document_id: UUID) -> list[AutomationCore]:
    """Return the file's automations with their notifications sent through ``block_document_id``."""
    automations: list[dict[str, Any]] = yaml.safe_load(AUTOMATIONS.read_text())["automations"]
    for automation in automations:
        for action in automation["actions"]:
            if action["type"] == "send-notification":
                action["block_document_id"] = str(block_document_id)
    return [AutomationCore.model_validate(a) for a in automations]


async def install(block: str) -> list[UUID]:
    """Create (or replace) the automations, notifying through the block ``slug/name``."""
    slug, _, name = block.partition("/")
    async with get_client() as client:
        document = await client.read_block_document_by_name(name=name, block_type_slug=slug)
        ids = []
        for automation in load(document.id):
            for old in await client.read_automations_by_name(automation.name):
                await client.delete_automation(old.id)
            ids.append(await client.create_automation(automation))
        return ids


if __name__ == "__main__":
    if len(sys.argv) != 2 or "/" not in sys.argv[1]:
        raise SystemExit(__doc__)
    for automation_id in asyncio.run(install(sys.argv[1])):
        print(automation_id)
