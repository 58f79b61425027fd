"""Closed-loop campaigns: spec, loop, storage (atomic, resumable), feedback."""

from harness.campaign.loop import CampaignSummary, run_campaign
from harness.campaign.spec import CampaignSpec, load_spec, parse_spec
from harness.campaign.store import CampaignStore

__all__ = ["CampaignSpec", "CampaignStore", "CampaignSummary", "load_spec", "parse_spec", "run_campaign"]
