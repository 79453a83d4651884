from __future__ import annotations

import pytest

from qr.runtime.config import ProjectConfig, S3Backend, Throttle, parse_config
from qr.runtime.errors import ProjectError


def problems(text: str) -> list[str]:
    with pytest.raises(ProjectError) as info:
        parse_config(text)
    return [str(p) for p in info.value.problems]


def test_empty_file_is_all_defaults() -> None:
    config = parse_config("", default_name="demo")
    assert config == ProjectConfig(name="demo")
    assert config.stage().name == "production"
    assert config.python_version == "3.12"


def test_full_file() -> None:
    config = parse_config(
        """
name: bookmarks
runtime: python3.13
architecture: x86_64
region: eu-west-1
memory: 1024
log_retention_days: 14
stages:
  production:
    domain: api.example.com
    zone: Z0123456789ABC
    env: {LOG_LEVEL: info, DEBUG: false, RETRIES: 3}
  staging: {}
terraform:
  backend: {s3: {bucket: my-tf-state, region: us-east-1}}
"""
    )
    assert config.name == "bookmarks"
    assert config.architecture == "x86_64"
    assert config.stage("production").domain == "api.example.com"
    assert config.stage("production").env == {"LOG_LEVEL": "info", "DEBUG": "false", "RETRIES": "3"}
    assert config.stage("staging").domain is None
    assert config.backend == S3Backend(bucket="my-tf-state", region="us-east-1")


def test_unknown_key_lists_known_ones_with_line() -> None:
    (problem,) = problems("name: x\nregoin: us-east-1\n")
    assert problem.startswith("qr.yaml:2: unknown key 'regoin' in qr.yaml. Did you mean 'region'?")
    assert "known keys: name, runtime, architecture, region" in problem


def test_every_problem_reported_together() -> None:
    found = problems(
        "name: Bad_Name\nruntime: python2.7\nmemory: 64\nstages:\n  prod:\n    domian: x\n"
    )
    assert len(found) == 4
    assert found[0].startswith("qr.yaml:1: name 'Bad_Name' is not valid")
    assert any("qr.yaml:2: runtime 'python2.7' is not supported" in p for p in found)
    assert any("qr.yaml:3: memory must be a whole number from 128 to 10240" in p for p in found)
    assert any("qr.yaml:6: unknown key 'domian' in stages.prod" in p for p in found)


def test_invalid_yaml_has_line() -> None:
    (problem,) = problems("name: x\nstages: [\n")
    assert problem.startswith("qr.yaml:")
    assert "invalid YAML" in problem


def test_top_level_must_be_mapping() -> None:
    (problem,) = problems("- a\n- b\n")
    assert "qr.yaml must be a mapping" in problem


def test_unknown_stage() -> None:
    config = parse_config("stages: {production: {}, staging: {}}")
    with pytest.raises(
        ProjectError, match=r"stage 'stagin' is not defined\. Did you mean 'staging'"
    ):
        config.stage("stagin")


def test_s3_backend_needs_bucket() -> None:
    (problem,) = problems("terraform: {backend: {s3: {region: us-east-1}}}")
    assert "needs a bucket" in problem


def test_docker_base_image() -> None:
    assert (
        parse_config("docker: {base_image: python:3.12-slim}").docker_base_image
        == "python:3.12-slim"
    )
    assert parse_config("").docker_base_image is None
    (problem,) = problems("docker: {image: x}")
    assert "unknown key 'image' in docker" in problem
    (problem,) = problems("docker: {base_image: 'not an image'}")
    assert "docker.base_image 'not an image' is not valid" in problem


def test_throttle_and_default_endpoint() -> None:
    config = parse_config(
        """
name: shop
throttle: {rate: 200.5}
stages:
  production:
    domain: api.example.com
    throttle: {burst: 400}
  preview:
    domain: preview.example.com
    default_endpoint: true
  staging: {}
"""
    )
    assert config.throttle == Throttle(rate=200.5, burst=2000)
    production = config.stage("production")
    assert config.throttle_of(production) == Throttle(rate=200.5, burst=400)
    assert config.throttle_of(config.stage("staging")) == Throttle(rate=200.5, burst=2000)
    assert ProjectConfig(name="x").throttle == Throttle(rate=1000, burst=2000)
    assert production.serves_default_endpoint is False  # a domain turns it off by default
    assert config.stage("preview").serves_default_endpoint is True
    assert config.stage("staging").serves_default_endpoint is True


def test_throttle_limits_name_the_line() -> None:
    found = problems(
        "name: x\n"
        "throttle: {rate: 20000, burst: 0}\n"
        "stages:\n"
        "  prod:\n"
        "    default_endpoint: false\n"
        "    throttle: {rate: fast}\n"
    )
    text = "\n".join(found)
    assert (
        "qr.yaml:2: throttle.rate must be requests per second above 0 and at most 10000 "
        "(API Gateway's default account quota), got 20000" in text
    )
    assert "qr.yaml:2: throttle.burst must be a whole number from 1 to 5000, got 0" in text
    assert "qr.yaml:6: stages.prod.throttle.rate must be requests per second" in text
    assert "qr.yaml:5: stages.prod.default_endpoint is false but the stage has no domain" in text
