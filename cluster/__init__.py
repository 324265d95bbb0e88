"""Ray cluster launch files (cloud YAML, KubeRay manifests, a local 2-node script) live here."""
