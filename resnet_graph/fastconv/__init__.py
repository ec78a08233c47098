"""CPU tuning kept apart from the model: exact convolution forms (forms.py), the policy that picks them
(policy.py) and the CPU features the 'auto' settings follow (cpu.py)."""
