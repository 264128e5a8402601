"""The digital fetal-head phantom: anatomy label maps and their B-mode ultrasound and T2 MRI renderings."""
