"""The MLflow Model Registry step: a new version per refit, and the ``champion`` alias moved
only when the new model beats the current champion's CV mean on the same dataset; two refits
registering at once leave it on the better one (``settle_champion``).

MLflow aliases, not the deprecated stages. Each version is tagged with where it came from
(sweep, configuration, CV mean and std, dataset fingerprint, feature-cache keys), so a version
found later in the registry can be traced back to its sweep and features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION = "champion"


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    champion: bool  # the alias now points at this version
    message: str


def register(client: MlflowClient, name: str, model_uri: str, run_id: str, tags: Mapping[str, str]) -> Registration:
    """Register ``model_uri`` as a new version of ``name``; move ``champion`` if it is better.

    ``tags`` must hold ``us8k.cv_accuracy_mean`` and ``us8k.dataset_fingerprint``.
    """
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description="UrbanSound8K classifier: audio in, class probabilities out.")
        except MlflowException as err:  # two refits at once: the other one created it in between
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    # A logged model's URI is models:/<model id>; the registry wants that id alongside it.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    created = client.create_model_version(name, source=model_uri, run_id=run_id, tags=dict(tags), model_id=model_id)
    version = str(created.version)
    mean = float(tags["us8k.cv_accuracy_mean"])
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        reason = "the first champion"
    elif current.tags.get("us8k.dataset_fingerprint") != tags["us8k.dataset_fingerprint"]:
        reason = f"version {current.version} was trained on another dataset"
    elif float(current.tags.get("us8k.cv_accuracy_mean", "nan")) < mean:
        reason = f"CV mean {mean:.4f} beats version {current.version}'s {float(current.tags['us8k.cv_accuracy_mean']):.4f}"
    else:
        return Registration(name, version, False, (
            f"registered {name} version {version} (CV mean {mean:.4f}); the champion stays version "
            f"{current.version} (CV mean {float(current.tags['us8k.cv_accuracy_mean']):.4f} on the same dataset)"))
    client.set_registered_model_alias(name, CHAMPION, version)
    holder = settle_champion(client, name, tags["us8k.dataset_fingerprint"])
    if str(holder.version) != version:
        return Registration(name, version, False, (
            f"registered {name} version {version} (CV mean {mean:.4f}); version {holder.version} (CV mean "
            f"{_mean(holder):.4f} on the same dataset), registered at the same time, holds @{CHAMPION}"))
    return Registration(name, version, True, f"registered {name} version {version} as @{CHAMPION}: {reason}")


def settle_champion(client: MlflowClient, name: str, fingerprint: str):
    """After moving the alias: if another refit on the same dataset registered a better version
    between our look at the champion and our move (two sweeps ending at once), give the alias to
    the best version of that dataset. Every refit does this after its move, so the last writer
    sees every version registered before it and the alias ends on the best one. Returns the
    version that holds the alias."""
    holder = client.get_model_version_by_alias(name, CHAMPION)
    if holder.tags.get("us8k.dataset_fingerprint") != fingerprint:
        return holder  # a refit on another dataset moved it since: that rule is last writer wins
    same = [v for v in client.search_model_versions(f"name='{name}'")
            if v.tags.get("us8k.dataset_fingerprint") == fingerprint]
    best = max(same, key=lambda v: (_mean(v), -int(v.version)))  # a tie keeps the earlier version
    if _mean(best) > _mean(holder):
        client.set_registered_model_alias(name, CHAMPION, str(best.version))
        return best
    return holder


def _mean(version) -> float:
    try:
        value = float(version.tags.get("us8k.cv_accuracy_mean", "-inf"))
    except ValueError:
        return float("-inf")
    return value if value == value else float("-inf")  # NaN ranks last
