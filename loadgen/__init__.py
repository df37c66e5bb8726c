"""Load generation: packet generators in C (`probes`, `synth`) and the harness behind `switchyard loadtest`."""
