"""The public event contract: what is accepted and what is refused, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from dispatcher.contract.events import DischargeEvent, NurseObservation, SensorReading
from dispatcher.contract.schemas import MODEL_BY_TOPIC, drift
from tests import helpers

ROOT = Path(__file__).resolve().parents[3]


class TestCitizenId:
    @pytest.mark.parametrize("cpr", ["010190-1234", "0101901234"])
    def test_cpr_number_is_refused(self, cpr: str) -> None:
        """A CPR-shaped citizen id is refused, dashed or not."""
        with pytest.raises(ValidationError) as err:
            NurseObservation.model_validate(helpers.observation(cpr))
        assert "CPR" in str(err.value)

    def test_cpr_inside_a_longer_id_is_refused(self) -> None:
        """A CPR number embedded in an otherwise valid id is refused too."""
        with pytest.raises(ValidationError):
            NurseObservation.model_validate(helpers.observation("cit-010190-1234"))

    def test_pseudonymous_id_is_accepted(self) -> None:
        """A pseudonymous id passes."""
        obs = NurseObservation.model_validate(helpers.observation("cit-7f3a9c"))
        assert obs.citizen_id == "cit-7f3a9c"


class TestEnvelope:
    def test_timestamp_without_offset_is_refused(self) -> None:
        """occurred_at must carry a UTC offset (RFC 3339)."""
        body = helpers.observation("cit-abc123")
        body["occurred_at"] = "2026-11-21T08:30:00"
        with pytest.raises(ValidationError) as err:
            NurseObservation.model_validate(body)
        assert err.value.errors()[0]["loc"] == ("occurred_at",)

    def test_unknown_field_is_refused(self) -> None:
        """Unknown fields are errors, so a typo never silently drops a vital sign."""
        body = helpers.observation("cit-abc123", spo_2=88)
        with pytest.raises(ValidationError) as err:
            NurseObservation.model_validate(body)
        assert err.value.errors()[0]["loc"] == ("spo_2",)

    def test_schema_version_other_than_1_is_refused(self) -> None:
        """Only schema_version 1 exists."""
        body = helpers.observation("cit-abc123")
        body["schema_version"] = 2
        with pytest.raises(ValidationError):
            NurseObservation.model_validate(body)


class TestObservation:
    def test_all_vitals_may_be_missing(self) -> None:
        """An observation with only the nurse's worry is valid; vitals are optional."""
        body = helpers.envelope("cit-abc123", worried=True, observer="nurse-002")
        obs = NurseObservation.model_validate(body)
        assert obs.spo2 is None
        assert obs.worried is True

    def test_consciousness_must_be_acvpu(self) -> None:
        """Consciousness accepts only A, C, V, P or U: anything else is dropped with the reason
        (never scored as A), the other vitals are kept."""
        body = helpers.observation("cit-abc123", consciousness="X")
        obs = NurseObservation.model_validate(body)
        assert obs.consciousness is None
        assert [d.field for d in obs.dropped] == ["consciousness"]
        assert "'A', 'C', 'V', 'P' or 'U'" in obs.dropped[0].reason
        assert obs.spo2 == body["spo2"]

    def test_a_boolean_is_not_a_measurement(self) -> None:
        """true for SpO2 is dropped, not read as 1 %."""
        obs = NurseObservation.model_validate(helpers.observation("cit-abc123", spo2=True))
        assert obs.spo2 is None
        assert [d.field for d in obs.dropped] == ["spo2"]

    def test_free_text_in_a_vital_is_not_echoed(self) -> None:
        """The reason names the JSON type of a rejected non-number, never its text."""
        body = helpers.observation("cit-abc123", pulse="0101701234 x")
        obs = NurseObservation.model_validate(body)
        assert "0101701234" not in obs.dropped[0].reason
        assert "(string)" in obs.dropped[0].reason

    def test_other_errors_still_refuse_the_observation(self) -> None:
        """A bad envelope field refuses the message even when a vital is also unusable."""
        body = helpers.observation("cit-abc123", pulse="fast")
        body["observer"] = "0101701234"  # CPR-shaped
        with pytest.raises(ValidationError) as err:
            NurseObservation.model_validate(body)
        assert {e["loc"][0] for e in err.value.errors()} == {"pulse", "observer"}


class TestSensorReading:
    def test_unit_must_fit_the_kind(self) -> None:
        """A weight in % is refused, naming the unit and the kind."""
        body = helpers.sensor("cit-abc123", "weight", 80.0, "%")
        with pytest.raises(ValidationError) as err:
            SensorReading.model_validate(body)
        assert "weight" in str(err.value)

    def test_nan_is_refused(self) -> None:
        """NaN is not a measurement."""
        body = helpers.sensor("cit-abc123", "spo2", float("nan"), "%")
        with pytest.raises(ValidationError):
            SensorReading.model_validate(body)


class TestDischarge:
    def test_icd10_codes_are_checked(self) -> None:
        """Diagnoses must be ICD-10 codes."""
        with pytest.raises(ValidationError):
            DischargeEvent.model_validate(helpers.discharge("cit-abc123", diagnoses=["COPD"]))


class TestSchemas:
    def test_committed_schemas_match_the_models(self) -> None:
        """schemas/*.json are exactly what the models generate (run `make schemas`)."""
        assert drift(ROOT / "schemas") == []

    @pytest.mark.parametrize("topic", sorted(MODEL_BY_TOPIC))
    def test_example_validates(self, topic: str) -> None:
        """Each input topic's example in schemas/examples/ is a valid event."""
        path = ROOT / "schemas" / "examples" / f"{topic}.json"
        if not path.exists():
            pytest.skip(f"{topic} is an output topic without an example")
        MODEL_BY_TOPIC[topic].model_validate(json.loads(path.read_text()))
