# The job image of hydra/launcher=kfp (`make image`). It holds navitune installed from this repository with
# its pinned dependencies — kfp and kfp-kubernetes included, so the pipeline's Lightweight Python component
# starts without pip (install_kfp_package=False, packages_to_install=[]) — plus the Cloud SQL Auth Proxy
# binary for proxy.mode=process, and runs as a non-root user. Push it to a registry the cluster pulls from and
# pass it as hydra.launcher.image.
FROM python:3.11-slim

ARG CLOUD_SQL_PROXY_VERSION=2.14.1
ARG TARGETARCH=amd64
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# proxy.mode=process runs `cloud-sql-proxy` inside the job container (proxy.mode=native uses its own image)
ADD https://storage.googleapis.com/cloud-sql-connectors/cloud-sql-proxy/v${CLOUD_SQL_PROXY_VERSION}/cloud-sql-proxy.linux.${TARGETARCH} /usr/local/bin/cloud-sql-proxy
RUN chmod 0755 /usr/local/bin/cloud-sql-proxy \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin navitune

WORKDIR /home/navitune/app
COPY pyproject.toml README.md ./
COPY experiment ./experiment
COPY launchers ./launchers
COPY conf ./conf
# Editable, so the app finds its conf/ beside the package (python -m experiment works in the image too).
# The check fails the build if the job entrypoint, kfp or the app cannot be imported.
RUN pip install -e . \
 && python -c "import kfp, kfp.kubernetes, hydra_plugins.navitune_kfp.job, experiment.__main__" \
 && mkdir outputs && chown navitune:navitune outputs

# the code stays root-owned (read-only for the job); jobs write under outputs/ (relative paths.outputs)
USER 10001:10001
# Compile the simulator's Numba kernels once, into the image (about 10 s), so a job loads them instead of
# compiling: as the job user, into a cache directory that user owns (Numba checks that it can write there).
ENV NUMBA_CACHE_DIR=/home/navitune/.cache/navitune-numba
RUN python -c "from experiment.sim.kernels import warm_up; print(f'simulator kernels compiled in {warm_up():.1f} s')"
CMD ["python", "-m", "experiment", "--help"]
