"""Everything the mappings folder defines, loaded and checked together: the field mappings,
the lifecycle and the attribution settings. `syncd check` and every pass
load them through `load_definitions`, so that one command reports every problem in every
file at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncd.attribution import AttributionSettings
from syncd.attribution_mapping import load_attribution
from syncd.errors import MappingError
from syncd.mapping import Mappings
from syncd.mapping_files import folder_problem
from syncd.mapping_loader import load_mappings
from syncd.stages import LifecycleSettings, load_lifecycle


@dataclass(frozen=True)
class Definitions:
    mappings: Mappings
    lifecycle: LifecycleSettings
    attribution: AttributionSettings


def load_definitions(folder: Path | None) -> Definitions:
    problems: list[str] = []
    mappings = lifecycle = attribution = None
    try:
        mappings = load_mappings(folder)
    except MappingError as error:
        problems += error.problems
    if folder is None or folder_problem(folder) is None:  # else said once, by load_mappings
        try:
            lifecycle = load_lifecycle(folder)
        except MappingError as error:
            problems += error.problems
        try:
            attribution = load_attribution(folder)
        except MappingError as error:
            problems += error.problems
    if problems or mappings is None or lifecycle is None or attribution is None:
        raise MappingError(problems)
    return Definitions(mappings, lifecycle, attribution)
