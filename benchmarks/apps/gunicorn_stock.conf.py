# gunicorn >= 27 opens a control socket at one fixed path; the benchmark does not use it.
control_socket_disable = True
