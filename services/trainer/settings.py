"""The trainer's settings: one object, overridable with ``STREAMREC_TRAINER_`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class TrainerSettings(BaseSettings):
    # populate_by_name: ``TrainerSettings(admin_key=...)`` works although the field is read
    # from the environment under its aliases.
    model_config = SettingsConfigDict(
        env_prefix="STREAMREC_TRAINER_", frozen=True, extra="ignore", populate_by_name=True
    )

    model_repository: Path = Field(
        default=REPO_ROOT / "triton_models",
        description="Triton's model repository, where new versions are published",
    )
    model: str = Field(default="scorer", description="the model it retrains and releases")
    triton_http_url: str = Field(default="http://127.0.0.1:8000", description="model control")
    # Triton's repository API is restricted to this key (TRITON_ADMIN_KEY) in
    # docker-compose.yml and in the embedded stack, which passes it to its trainer.
    # A secret: masked wherever the settings are printed.
    admin_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STREAMREC_TRAINER_ADMIN_KEY", "TRITON_ADMIN_KEY"),
        description=(
            "sent as `admin-key` on Triton's model-control calls (trainer, `deploy`, "
            "`rollback`) where Triton restricts that API"
        ),
    )

    host: str = Field(default="127.0.0.1", description="address of its HTTP page")
    port: int = Field(default=6070, description="HTTP: /healthz, /status, POST /train")
    data_dir: Path = Field(default=REPO_ROOT / ".run" / "trainer", description="event log")
    keep_versions: int = Field(default=3, ge=1, description="published versions kept")

    # When to retrain: whichever comes first (0 turns a trigger off).
    interval_s: float = Field(default=3600.0, ge=0, description="retrain this often (s)")
    every_clicks: int = Field(default=20_000, ge=0, description="retrain after this many clicks")
    min_clicks: int = Field(default=1_000, ge=1, description="no training on fewer clicks")

    # How: fine-tune from the serving version on the newest clicks before the holdout. The
    # event log only grows; training on all of it makes every job slower than the last
    # (72,000 clicks took 355 s on the 2-core machine, several times that beside busy
    # workers), and a warm start already carries what older clicks taught.
    max_train_clicks: int = Field(
        default=100_000,
        ge=0,
        description="fine-tune on at most this many newest clicks before the holdout; 0: all",
    )
    epochs: int = Field(default=2, ge=1, description="fine-tuning epochs at most")
    patience: int = Field(default=1, ge=1, description="epochs without improvement that stop it")
    seed: int = Field(default=0, description="for shuffling and initialisation")
    holdout_fraction: float = Field(
        default=0.1, gt=0, lt=1, description="newest share of clicks held out for the verdict"
    )
    max_eval_cases: int = Field(
        default=4_000, ge=1, description="holdout cases the champion/challenger verdict uses"
    )

    tensorrt: bool = Field(
        default=True, description="also build a TensorRT plan of each version on a GPU machine"
    )

    # Promote unless the challenger is worse than the champion by more than this share
    # on HR@10 or NDCG@10 (0.01: up to 1% worse still promotes, for fresher data).
    tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="largest HR@10/NDCG@10 loss that still promotes"
    )

    # Drift: river ADWIN per segment on the online hit rate (a click on an item of the
    # user's last list is a hit); a drop retrains before the timer does.
    drift: bool = Field(default=True, description="retrain when a segment's online HR drops")
    drift_delta: float = Field(default=0.002, gt=0, lt=1, description="ADWIN's confidence")
    drift_min_judged: int = Field(
        default=500, ge=1, description="verdicts a segment needs before it can signal drift"
    )
    drift_cooldown_s: float = Field(
        default=900.0, ge=0, description="at most one drift-triggered retraining this often"
    )

    # Shadow trial before promotion (needs the service's live monitor; 0 s turns it off).
    shadow_s: float = Field(default=300.0, ge=0, description="longest shadow window")
    shadow_min_judged: int = Field(
        default=1_000, ge=1, description="paired online verdicts that end the window early"
    )
    # Off by default: users click what they were shown, and only the served list was
    # shown, so the comparison favours the served version (exposure bias). On, a challenger
    # clearly worse even so is kept out; off, the numbers are recorded and advisory.
    shadow_rule: bool = Field(
        default=False, description="refuse a challenger whose online HR in shadow is worse"
    )

    @field_validator("admin_key")
    @classmethod
    def _empty_key_is_no_key(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty TRITON_ADMIN_KEY is no key: nothing to send.
        return value if value is not None and value.get_secret_value().strip() else None
