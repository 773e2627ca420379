"""SITS:Vision connector over StuTalk."""
