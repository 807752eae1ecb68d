"""Issue 12 item 5: context that accumulates - diagnoses and flags merge with provenance, SKS
and ICD-10 codes are one, flags end only when a source says so, the condition map is data."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from dispatcher.contract.events import normalise_diagnosis
from dispatcher.rules.assessment import competence_for, evaluate
from dispatcher.rules.context import (
    CitizenContext,
    Provenance,
    apply_discharge,
    conditions_for,
    provenance,
)
from dispatcher.rules.ruleset import default_ruleset, default_ruleset_text, parse_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge

RS = default_ruleset()
D = timedelta(days=1)


class TestMerge:
    """A later discharge adds to the earlier one instead of replacing it."""

    def test_flags_and_diagnoses_of_two_discharges_merge(self) -> None:
        """Hypercapnic failure and palliative from the first stay survive a second stay that
        does not repeat them; both stays' diagnoses and conditions are kept."""
        first = discharge(
            at=NOW - 20 * D,
            diagnoses=["J44.1"],
            flags=["hypercapnic_respiratory_failure", "palliative"],
        )
        second = discharge(at=NOW - 2 * D, diagnoses=["I50.0"], flags=["lives_alone"])
        ctx = apply_discharge(apply_discharge(None, first), second)
        assert ctx.diagnoses == ("J44.1", "I50.0")
        assert ctx.conditions == ("copd", "heart_failure")
        assert set(ctx.flags) == {"hypercapnic_respiratory_failure", "palliative", "lives_alone"}
        assert ctx.news2_scale == 2
        assert ctx.palliative
        assert ctx.discharged_at == second.discharged_at
        assert ctx.discharge_count == 2

    def test_provenance_names_source_event_and_time(self) -> None:
        """Each diagnosis and flag says which discharge brought it (event id and time)."""
        first = discharge(at=NOW - 20 * D, diagnoses=["J44.1"], flags=["palliative"])
        second = discharge(at=NOW - 2 * D, diagnoses=["J44.1", "I50.0"])
        ctx = apply_discharge(apply_discharge(None, first), second)
        copd = provenance(ctx, diagnosis="J44.1")
        hf = provenance(ctx, diagnosis="I50.0")
        flag = provenance(ctx, flag="palliative")
        assert isinstance(copd, Provenance)
        assert isinstance(hf, Provenance)
        assert (copd.n, copd.event_id, copd.at) == (1, str(first.event_id), first.discharged_at)
        assert (hf.n, hf.event_id) == (2, str(second.event_id))
        assert flag == copd
        assert provenance(ctx, diagnosis="E11.9") is None

    def test_older_discharge_arriving_late_adds_facts_keeps_the_stay(self) -> None:
        """A discharge older than the one on record adds its diagnoses and flags but never moves
        the current stay (time, hospital, district) back."""
        newer = apply_discharge(None, discharge(at=NOW, hospital="hospital-new"))
        both = apply_discharge(
            newer,
            discharge(
                at=NOW - 40 * D, hospital="h-old", diagnoses=["I50.1"], flags=["home_oxygen"]
            ),
        )
        assert both.hospital == "hospital-new"
        assert both.discharged_at == NOW
        assert both.conditions == ("heart_failure",)
        assert "home_oxygen" in both.flags

    def test_sources_are_bounded_older_ones_by_number(self) -> None:
        """Only the newest MAX_SOURCES sources keep id and time; older entries keep their
        discharge number."""
        ctx = None
        for i, code in enumerate(["J44.1", "I50.0", "E11.9"]):
            ctx = apply_discharge(ctx, discharge(at=NOW - (10 - i) * D, diagnoses=[code]))
        assert ctx is not None
        assert [s.n for s in ctx.sources] == [2, 3]
        assert provenance(ctx, diagnosis="J44.1") == 1
        assert ctx.conditions == ("copd", "heart_failure", "diabetes")

    def test_context_stored_before_provenance_still_folds(self) -> None:
        """A stored context without source tuples merges, with unknown provenance (0)."""
        legacy = CitizenContext(
            citizen_id="cit-7f3a9c", diagnoses=("J44.1",), conditions=("copd",), flags=("x_y",)
        )
        ctx = apply_discharge(legacy, discharge(diagnoses=["I50.0"]))
        assert ctx.diagnoses == ("J44.1", "I50.0")
        assert provenance(ctx, diagnosis="J44.1") == 0
        assert provenance(ctx, flag="x_y") == 0


class TestFlagsEndOnlyWhenASourceSaysSo:
    """A flag ends only on an explicit ``flags_ended`` from a source not older than its setter."""

    def test_flags_ended_removes_the_flag(self) -> None:
        """A later discharge ending palliative removes it (and the palliative route)."""
        ctx = apply_discharge(None, discharge(at=NOW - 10 * D, flags=["palliative"]))
        ctx = apply_discharge(ctx, discharge(at=NOW - 1 * D, flags_ended=["palliative"]))
        assert not ctx.palliative
        assert competence_for(ctx) == "general_acute"

    def test_an_older_source_cannot_end_a_newer_flag(self) -> None:
        """An ending from a stay older than the one that set the flag is ignored."""
        ctx = apply_discharge(None, discharge(at=NOW - 1 * D, flags=["palliative"]))
        ctx = apply_discharge(ctx, discharge(at=NOW - 30 * D, flags_ended=["palliative"]))
        assert ctx.palliative

    def test_set_and_ended_in_one_event_is_refused(self) -> None:
        """A discharge cannot both set and end the same flag."""
        with pytest.raises(ValidationError, match="both set and ended"):
            discharge(flags=["palliative"], flags_ended=["palliative"])

    def test_evaluate_notes_the_ended_flag(self) -> None:
        """The discharge assessment says which flags this source ended."""
        _, ctx = evaluate(discharge(at=NOW - 9 * D, flags=["palliative"]), None, NOW, RS)
        a, _ = evaluate(discharge(at=NOW - D, flags_ended=["palliative"]), ctx, NOW, RS)
        assert any("ended by this source: palliative" in n for n in a.notes)


class TestCodes:
    """ICD-10 and SKS codes are accepted and normalised to one form."""

    @pytest.mark.parametrize(
        ("code", "normal"),
        [
            ("I50.1", "I50.1"),
            ("I501", "I50.1"),
            ("DI501", "I50.1"),
            ("DI500", "I50.0"),
            ("DJ441", "J44.1"),
            ("DJ441A", "J44.1A"),
            ("DI50", "I50"),
            ("D50.1", "D50.1"),  # ICD-10 chapter III (anaemia), not SKS: digit in 2nd place
            ("E119", "E11.9"),
        ],
    )
    def test_normalise(self, code: str, normal: str) -> None:
        """Both spellings give WHO ICD-10 with the dot."""
        assert normalise_diagnosis(code) == normal

    def test_sks_and_icd10_of_the_same_code_are_one_diagnosis(self) -> None:
        """DJ441 from one hospital and J44.1 from another is one diagnosis, not two."""
        ctx = apply_discharge(None, discharge(diagnoses=["DJ441", "DI500"]))
        ctx = apply_discharge(ctx, discharge(diagnoses=["J44.1"]))
        assert ctx.diagnoses == ("J44.1", "I50.0")
        assert ctx.conditions == ("copd", "heart_failure")

    @pytest.mark.parametrize("bad", ["di501", "I5", "DI5", "J44.", "X"])
    def test_malformed_code_is_refused_naming_the_field(self, bad: str) -> None:
        """Something that is neither ICD-10 nor SKS is refused (the field is named)."""
        with pytest.raises(ValidationError) as err:
            discharge(diagnoses=[bad])
        assert err.value.errors()[0]["loc"][0] == "diagnoses"


class TestHeartFailureMap:
    """The heart-failure map (in default.yaml, cited) covers I50.*, I11.0, I13.0, I13.2, I42.*."""

    @pytest.mark.parametrize(
        "code", ["I50.0", "I50.9", "I11.0", "I13.0", "I13.2", "I42.0", "I42.9", "DI420"]
    )
    def test_heart_failure_codes(self, code: str) -> None:
        """Each code (or its SKS form) maps to heart_failure and its competence."""
        _, ctx = evaluate(discharge(diagnoses=[code]), None, NOW, RS)
        assert ctx.conditions == ("heart_failure",)
        assert competence_for(ctx) == "heart_failure"

    @pytest.mark.parametrize("code", ["I11.9", "I13.1", "I10", "I25.1"])
    def test_neighbouring_codes_are_not_heart_failure(self, code: str) -> None:
        """Hypertensive disease without heart failure, hypertension, IHD: no mapping."""
        assert conditions_for([code], RS.condition_map()) == ()

    def test_every_condition_mapping_is_cited(self) -> None:
        """Each mapping carries a source."""
        assert all(len(c.source) > 10 for c in RS.conditions)
        hf = next(c for c in RS.conditions if c.condition == "heart_failure")
        assert {"I50", "I11.0", "I13.0", "I13.2", "I42"} <= set(hf.icd10_prefixes)
        assert "ESC" in hf.source

    def test_the_map_is_data(self) -> None:
        """A rule set with another map changes the conditions without code changes."""
        data = yaml.safe_load(default_ruleset_text())
        data["conditions"] = [{"condition": "ckd", "icd10_prefixes": ["N18"], "source": "x-y-z"}]
        rs = parse_ruleset(yaml.safe_dump(data))
        _, ctx = evaluate(discharge(diagnoses=["N18.5", "I50.0"]), None, NOW, rs)
        assert ctx.conditions == ("ckd",)
