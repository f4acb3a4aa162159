"""Upstream's schema of the ``initContainers`` platform-spec entry, built at run time in a private descriptor
pool (kfp-kubernetes 2.17.3 predates it), to check what ``native`` writes."""

from __future__ import annotations

import re
from typing import Any, Mapping

_UPSTREAM_CLASS: Any = None


def _upstream_executor_config_class() -> Any:
    """``KubernetesExecutorConfig`` as upstream defines it since kubeflow/pipelines#13651: the installed
    kfp-kubernetes descriptor plus, if it lacks them (2.17.3 does), the ``InitContainer`` message and field 19
    ``init_containers``, built in a private descriptor pool (the installed module is not touched)."""
    global _UPSTREAM_CLASS
    if _UPSTREAM_CLASS is not None:
        return _UPSTREAM_CLASS
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from kfp.kubernetes import kubernetes_executor_config_pb2 as pb

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(fdp)
    cfg_msg = next(m for m in fdp.message_type if m.name == "KubernetesExecutorConfig")
    if not any(f.name == "init_containers" for f in cfg_msg.field):
        def add(msg: Any, name: str, number: int, ftype: int, label: int = F.LABEL_OPTIONAL,
                type_name: str = "", json_name: str = "") -> Any:
            f = msg.field.add(name=name, number=number, type=ftype, label=label,
                              json_name=json_name or re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name))
            if type_name:
                f.type_name = type_name
            return f

        ic = fdp.message_type.add(name="InitContainer")
        add(ic, "name", 1, F.TYPE_STRING)
        add(ic, "image", 2, F.TYPE_STRING)
        add(ic, "command", 3, F.TYPE_STRING, F.LABEL_REPEATED)
        add(ic, "args", 4, F.TYPE_STRING, F.LABEL_REPEATED)
        env = ic.nested_type.add(name="EnvVar")
        add(env, "name", 1, F.TYPE_STRING)
        add(env, "value", 2, F.TYPE_STRING)
        add(ic, "env", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".kfp_kubernetes.InitContainer.EnvVar")
        vm = ic.nested_type.add(name="VolumeMount")
        add(vm, "volume_name", 1, F.TYPE_STRING)
        add(vm, "mount_path", 2, F.TYPE_STRING)
        add(ic, "volume_mounts", 6, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".kfp_kubernetes.InitContainer.VolumeMount")
        rp = add(ic, "restart_policy", 7, F.TYPE_STRING)
        rp.proto3_optional = True
        ic.oneof_decl.add(name="_restart_policy")
        rp.oneof_index = 0
        rr = ic.nested_type.add(name="ResourceRequirements")
        for i, part in enumerate(("requests", "limits"), start=1):
            entry = rr.nested_type.add(name=f"{part.capitalize()}Entry")
            entry.options.map_entry = True
            add(entry, "key", 1, F.TYPE_STRING)
            add(entry, "value", 2, F.TYPE_STRING)
            add(rr, part, i, F.TYPE_MESSAGE, F.LABEL_REPEATED,
                f".kfp_kubernetes.InitContainer.ResourceRequirements.{part.capitalize()}Entry")
        add(ic, "resources", 8, F.TYPE_MESSAGE, type_name=".kfp_kubernetes.InitContainer.ResourceRequirements")
        add(cfg_msg, "init_containers", 19, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".kfp_kubernetes.InitContainer")

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add_file(fd: Any) -> None:
        if fd.name in added:
            return
        for dep in fd.dependencies:
            add_file(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        pool.Add(proto)
        added.add(fd.name)

    for dep in pb.DESCRIPTOR.dependencies:
        add_file(dep)
    pool.Add(fdp)
    _UPSTREAM_CLASS = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("kfp_kubernetes.KubernetesExecutorConfig"))
    return _UPSTREAM_CLASS


def check_executor_config(executor_config: Mapping[str, Any]) -> None:
    """Parse one executor's Kubernetes config strictly against upstream's schema (unknown fields fail, as on
    the backend), so a malformed sidecar entry fails at compile time, not in the cluster. A no-op without
    kfp-kubernetes installed."""
    try:
        cls = _upstream_executor_config_class()
    except ImportError:
        return
    from google.protobuf import json_format

    try:
        msg = json_format.ParseDict(dict(executor_config), cls())
    except json_format.ParseError as err:
        raise ValueError(f"the Kubernetes executor config does not match KubernetesExecutorConfig: {err}") from None
    for init in getattr(msg, "init_containers", []):
        if init.HasField("restart_policy") and init.restart_policy != "Always":
            raise ValueError(f"init container {init.name!r}: restartPolicy must be 'Always' if set")
