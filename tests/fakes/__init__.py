"""Fakes of the services policyhub talks to: real servers on loopback speaking their protocols."""
