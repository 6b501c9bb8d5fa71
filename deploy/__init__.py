"""Production shape: compose and Kubernetes manifests, validated statically by deploy.validate;
deploy/local/ runs the same services on this machine for the demo, the tests and CI."""
