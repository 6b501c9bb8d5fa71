"""Production shape: compose and Kubernetes manifests, validated statically by deploy.validate."""
